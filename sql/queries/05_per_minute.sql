-- Scoring activity in one-minute tumbling windows.
USE speed_dating;
SELECT `minute`, predictions, ROUND(mean_probability, 3) AS mean_probability, predicted_matches
FROM predictions_per_minute
ORDER BY `minute`;

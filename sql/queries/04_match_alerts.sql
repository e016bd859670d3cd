-- Which dates are predicted to match, most likely first?
USE speed_dating;
SELECT id, ROUND(probability, 3) AS probability, ROUND(`threshold`, 3) AS `threshold`,
       model_version, scored_at
FROM match_alerts
ORDER BY probability DESC
LIMIT 20;

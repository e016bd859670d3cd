-- How accurate is live scoring against what really happened (after score_labels is loaded)?
USE speed_dating;
SELECT scored, ROUND(accuracy, 3) AS accuracy, ROUND(accuracy_baseline, 3) AS always_no_match,
       ROUND(`precision`, 3) AS `precision`, ROUND(recall, 3) AS recall, model_versions_used
FROM live_scoring_accuracy;

-- The same, per model version that did the scoring.
SELECT p.model_version, COUNT(*) AS scored, ROUND(AVG(p.predicted = l.`match`), 3) AS accuracy
FROM predictions p JOIN score_labels l ON l.id = p.id
GROUP BY p.model_version
ORDER BY p.model_version;

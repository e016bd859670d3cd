-- How good is live scoring against what really happened (the outcomes that have come in)?
-- A prediction whose outcome has not arrived yet is counted in awaiting_outcome, not judged.
USE speed_dating;
SELECT scored, awaiting_outcome, ROUND(accuracy, 3) AS accuracy,
       ROUND(accuracy_baseline, 3) AS always_no_match, ROUND(`precision`, 3) AS `precision`,
       ROUND(`recall`, 3) AS `recall`, ROUND(auc, 3) AS auc, model_versions_used
FROM live_scoring_accuracy;

-- The same, per model version that did the scoring.
SELECT model_version, predictions, with_outcome, awaiting_outcome, ROUND(accuracy, 3) AS accuracy,
       ROUND(accuracy_baseline, 3) AS always_no_match, ROUND(`precision`, 3) AS `precision`,
       ROUND(`recall`, 3) AS `recall`, ROUND(auc, 3) AS auc
FROM live_quality_per_version
ORDER BY model_version;

-- The same, per minute in which the outcomes became known.
SELECT `minute`, with_outcome, ROUND(accuracy, 3) AS accuracy,
       ROUND(accuracy_baseline, 3) AS always_no_match, ROUND(`precision`, 3) AS `precision`,
       ROUND(`recall`, 3) AS `recall`, ROUND(auc, 3) AS auc, model_versions_used
FROM live_quality_per_minute
ORDER BY `minute`;

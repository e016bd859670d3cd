-- How old was the model that made each prediction? Per model version that scored: when it was
-- trained, its age when it scored (seconds), and how far the training had moved on by then (rows
-- learnt by later versions, versions behind). A rollback version has no trained_at, so no age.
USE speed_dating;
SELECT model_version, MIN(kind) AS kind, COUNT(*) AS predictions, MIN(trained_at) AS trained_at,
       ROUND(MIN(model_age_seconds), 1) AS min_age_s, ROUND(AVG(model_age_seconds), 1) AS mean_age_s,
       ROUND(MAX(model_age_seconds), 1) AS max_age_s,
       ROUND(AVG(rows_learnt_since), 1) AS mean_rows_learnt_since,
       MAX(versions_behind) AS max_versions_behind
FROM prediction_staleness
GROUP BY model_version
ORDER BY model_version;

-- Where did the model's inputs or its error move? One row per alarm (drift_alerts), then every
-- training batch's drift figures (PSI is NULL until 500 rows are in the window and 500 before it).
USE speed_dating;
SELECT model_version, trained_at, kind, ROUND(score, 3) AS score, detail, rows_seen_total
FROM drift_alerts
ORDER BY model_version, kind;

SELECT model_version, rows_seen_total, ROUND(psi_max, 3) AS psi_max, psi_worst, feature_drift,
       error_drift, ROUND(error_drift_score, 1) AS page_hinkley
FROM training_metrics
ORDER BY model_version;

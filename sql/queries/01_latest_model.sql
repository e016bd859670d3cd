-- Which model version is live, and how good was it on its last batch (before learning from it)?
USE speed_dating;
SELECT model_version, rows_seen_total, ROUND(accuracy, 3) AS accuracy,
       ROUND(accuracy_baseline, 3) AS always_no_match, ROUND(auc, 3) AS auc,
       ROUND(f1, 3) AS f1, ROUND(`threshold`, 3) AS `threshold`, trained_at
FROM latest_model_metrics;

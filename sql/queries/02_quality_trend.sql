-- How did accuracy and AUC move as the model saw more dates?
USE speed_dating;
SELECT model_version, rows_seen_total, ROUND(accuracy, 3) AS accuracy, ROUND(auc, 3) AS auc,
       ROUND(auc_precision_recall, 3) AS auc_pr, ROUND(f1, 3) AS f1
FROM model_quality_trend
ORDER BY model_version;

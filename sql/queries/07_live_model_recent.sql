-- How good is the model that is live now, on the outcomes that came in during the last N minutes?
-- N is 15 here: change the INTERVAL below. The live model is the pinned version while a pin
-- holds, else the newest (live_model_version). Its predictions whose outcome arrived earlier, or
-- has not arrived, are left out of the first result; the second counts those still awaited.
USE speed_dating;
SELECT (SELECT model_version FROM live_model_version) AS live_model_version,
       COUNT(*) AS outcomes_in_window, ROUND(CAST(SUM(predicted = `match`) AS DOUBLE)
       / NULLIF(COUNT(*), 0), 3) AS accuracy,
       ROUND(1 - CAST(SUM(`match`) AS DOUBLE) / NULLIF(COUNT(*), 0), 3) AS always_no_match,
       ROUND(CAST(SUM(predicted = 1 AND `match` = 1) AS DOUBLE)
             / NULLIF(SUM(predicted = 1), 0), 3) AS `precision`,
       ROUND(CAST(SUM(predicted = 1 AND `match` = 1) AS DOUBLE)
             / NULLIF(SUM(`match` = 1), 0), 3) AS `recall`,
       -- rank-based ROC AUC with ties at their mean rank (sql/20_views.sql explains it)
       ROUND((SUM(CASE WHEN `match` = 1 THEN mid_rank END) - SUM(`match`) * (SUM(`match`) + 1)
              / 2e0) / NULLIF(SUM(`match`) * SUM(1 - `match`), 0), 3) AS auc
FROM (SELECT po.*,
             RANK() OVER (ORDER BY po.probability)
               + (COUNT(*) OVER (PARTITION BY po.probability) - 1) / 2e0 AS mid_rank
      FROM prediction_outcomes po
      JOIN live_model_version l ON l.model_version = po.model_version
      WHERE po.outcome_known_at >= NOW(6) - INTERVAL 15 MINUTE) recent;

SELECT v.model_version, v.predictions, v.with_outcome, v.awaiting_outcome
FROM live_quality_per_version v
JOIN live_model_version l ON l.model_version = v.model_version;

-- matchstream: views that answer the demo's questions with plain SQL (MariaDB and SingleStore).

USE speed_dating;

-- The newest model's metrics (measured on its last batch before learning from it).
CREATE OR REPLACE VIEW latest_model_metrics AS
SELECT m.*
FROM training_metrics m
WHERE m.model_version = (SELECT MAX(model_version) FROM training_metrics);

-- How accuracy and AUC moved over model versions.
CREATE OR REPLACE VIEW model_quality_trend AS
SELECT model_version, rows_seen_total, `rows` AS batch_rows, accuracy, accuracy_baseline,
       auc, auc_precision_recall, f1, threshold, trained_at
FROM training_metrics;

-- Live accuracy of scoring, once score_labels is loaded: predictions joined with the truth.
CREATE OR REPLACE VIEW live_scoring_accuracy AS
SELECT COUNT(*)                                                   AS scored,
       SUM(p.predicted = l.`match`) / COUNT(*)                    AS accuracy,
       1 - AVG(l.`match`)                                         AS accuracy_baseline,
       SUM(p.predicted = 1 AND l.`match` = 1) / NULLIF(SUM(p.predicted = 1), 0) AS `precision`,
       SUM(p.predicted = 1 AND l.`match` = 1) / NULLIF(SUM(l.`match` = 1), 0)   AS recall,
       COUNT(DISTINCT p.model_version)                            AS model_versions_used
FROM predictions p
JOIN score_labels l ON l.id = p.id;

-- Dates predicted to match: probability at or above the decision threshold of the model version
-- that scored them (chosen on recent data to maximise F1).
CREATE OR REPLACE VIEW match_alerts AS
SELECT p.id, p.probability, m.threshold, p.model_version, p.scored_at
FROM predictions p
JOIN training_metrics m ON m.model_version = p.model_version
WHERE p.probability >= m.threshold;

-- Tumbling one-minute windows over scoring time.
CREATE OR REPLACE VIEW predictions_per_minute AS
SELECT DATE_FORMAT(scored_at, '%Y-%m-%d %H:%i:00') AS minute,
       COUNT(*)                                     AS predictions,
       AVG(probability)                             AS mean_probability,
       SUM(predicted)                               AS predicted_matches
FROM predictions
GROUP BY DATE_FORMAT(scored_at, '%Y-%m-%d %H:%i:00');

-- Where every model version came from: learned from a batch (its metrics row) or published by a
-- rollback (its model_actions row). "Which batch made version N, from which parent" is a WHERE.
CREATE OR REPLACE VIEW model_lineage AS
SELECT m.model_version, m.parent_version, 'learned' AS kind, m.input_fingerprint,
       m.`rows`, m.rows_seen_total, m.auc, m.trained_at AS created_at
FROM training_metrics m
UNION ALL
SELECT a.model_version, a.source_version AS parent_version, 'rollback' AS kind,
       NULL AS input_fingerprint, 0 AS `rows`, NULL AS rows_seen_total, NULL AS auc,
       a.acted_at AS created_at
FROM model_actions a
WHERE a.action = 'rollback';

-- Training batches where the model's inputs or its error moved (docs/model.md, "Drift"):
-- one row per alarm. kind says which detector fired; the threshold is the trainer's.
CREATE OR REPLACE VIEW drift_alerts AS
SELECT m.model_version, m.trained_at, 'feature' AS kind, m.psi_max AS score,
       m.psi_worst AS detail, m.rows_seen_total
FROM training_metrics m
WHERE m.feature_drift = 1
UNION ALL
SELECT m.model_version, m.trained_at, 'error' AS kind, m.error_drift_score AS score,
       CONCAT('prequential loss ', ROUND(m.average_loss, 3), ' on ', m.`rows`, ' rows') AS detail,
       m.rows_seen_total
FROM training_metrics m
WHERE m.error_drift = 1;

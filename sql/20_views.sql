-- matchstream: views that answer the demo's questions with plain SQL (MariaDB and SingleStore).

USE speed_dating;

-- SingleStore has no CREATE OR REPLACE VIEW: every view is dropped, then created. Views use views
-- (model_lineage, prediction_outcomes), so they are dropped users first: a re-run never drops
-- a view another one still reads.
DROP VIEW IF EXISTS alerts_to_publish;
DROP VIEW IF EXISTS drift_alerts;
DROP VIEW IF EXISTS prediction_staleness;
DROP VIEW IF EXISTS live_quality_per_minute;
DROP VIEW IF EXISTS live_quality_per_version;
DROP VIEW IF EXISTS live_scoring_accuracy;
DROP VIEW IF EXISTS prediction_outcomes;
DROP VIEW IF EXISTS live_model_version;
DROP VIEW IF EXISTS model_lineage;
DROP VIEW IF EXISTS predictions_per_minute;
DROP VIEW IF EXISTS match_alerts;
DROP VIEW IF EXISTS model_quality_trend;
DROP VIEW IF EXISTS latest_model_metrics;

-- The newest model's metrics (measured on its last batch before learning from it).
CREATE VIEW latest_model_metrics AS
SELECT m.*
FROM training_metrics m
WHERE m.model_version = (SELECT MAX(model_version) FROM training_metrics);

-- How accuracy and AUC moved over model versions.
CREATE VIEW model_quality_trend AS
SELECT model_version, rows_seen_total, `rows` AS batch_rows, accuracy, accuracy_baseline,
       auc, auc_precision_recall, f1, `threshold`, trained_at
FROM training_metrics;

-- Dates predicted to match: probability at or above the decision threshold of the model version
-- that scored them (chosen on recent data to maximise F1).
CREATE VIEW match_alerts AS
SELECT p.id, p.probability, m.threshold, p.model_version, p.scored_at
FROM predictions p
JOIN training_metrics m ON m.model_version = p.model_version
WHERE p.probability >= m.threshold;

-- Tumbling one-minute windows over scoring time.
CREATE VIEW predictions_per_minute AS
SELECT DATE_FORMAT(scored_at, '%Y-%m-%d %H:%i:00') AS `minute`,
       COUNT(*)                                     AS predictions,
       AVG(probability)                             AS mean_probability,
       SUM(predicted)                               AS predicted_matches
FROM predictions
GROUP BY DATE_FORMAT(scored_at, '%Y-%m-%d %H:%i:00');

-- Where every model version came from: learned from a batch (its metrics row) or published by a
-- rollback (its model_actions row). "Which batch made version N, from which parent" is a WHERE.
CREATE VIEW model_lineage AS
SELECT m.model_version, m.parent_version, 'learned' AS kind, m.input_fingerprint,
       m.`rows`, m.rows_seen_total, m.auc, m.trained_at AS created_at
FROM training_metrics m
UNION ALL
SELECT a.model_version, a.source_version AS parent_version, 'rollback' AS kind,
       NULL AS input_fingerprint, 0 AS `rows`, NULL AS rows_seen_total, NULL AS auc,
       a.acted_at AS created_at
FROM model_actions a
WHERE a.action = 'rollback';

-- The version scoring uses now: the pinned one while a pin holds (the newest pin or unpin in
-- model_actions is a pin; a rollback does not lift a pin), else the newest version, learned or
-- rolled back. One row (NULL before the first version).
CREATE VIEW live_model_version AS
SELECT CASE WHEN last_pin.action = 'pin' THEN last_pin.model_version
            ELSE newest.model_version END AS model_version
FROM (SELECT MAX(model_version) AS model_version FROM model_lineage) newest
LEFT JOIN (SELECT a.action, a.model_version
           FROM model_actions a
           WHERE a.action_id = (SELECT MAX(action_id) FROM model_actions
                                WHERE `action` IN ('pin', 'unpin'))) last_pin
       ON 1 = 1;

-- --- Live quality: predictions against the outcomes known so far ---------------------------
-- Outcomes arrive later on their own topic (table outcomes), so at any moment some predictions
-- are judged and some await their outcome: those are counted (awaiting_outcome), never dropped.
-- Ratios are CAST to DOUBLE first: MariaDB divides integers as DECIMAL cut to 4 decimal places.
-- precision is NULL when nothing judged was predicted to match, recall and auc when no judged
-- date matched (auc also when every one did), like the training metrics.
-- auc is the rank form of ROC AUC: (sum of the matches' ranks - n1 (n1 + 1) / 2) / (n1 n0),
-- ranking by probability with tied probabilities given their mean rank (mid_rank: RANK() is the
-- first rank of a tie, the tie's size minus one over two moves it to the middle), which is
-- exactly the area under the ROC curve with ties counted half.

-- Each prediction with its true outcome once known (`match` and outcome_known_at NULL while it
-- is awaited).
CREATE VIEW prediction_outcomes AS
SELECT p.id, p.model_version, p.probability, p.predicted, p.scored_at,
       o.`match`, o.loaded_at AS outcome_known_at
FROM predictions p
LEFT JOIN outcomes o ON o.id = p.id;

-- All of live scoring: how good the predictions are whose outcome came in. `scored` counts the
-- judged predictions (as before outcomes streamed), awaiting_outcome the others.
CREATE VIEW live_scoring_accuracy AS
SELECT COUNT(`match`)                                                   AS scored,
       COUNT(*) - COUNT(`match`)                                        AS awaiting_outcome,
       CAST(SUM(predicted = `match`) AS DOUBLE) / NULLIF(COUNT(`match`), 0) AS accuracy,
       1 - CAST(SUM(`match`) AS DOUBLE) / NULLIF(COUNT(`match`), 0)     AS accuracy_baseline,
       CAST(SUM(predicted = 1 AND `match` = 1) AS DOUBLE)
         / NULLIF(SUM(predicted = 1 AND `match` IS NOT NULL), 0)        AS `precision`,
       CAST(SUM(predicted = 1 AND `match` = 1) AS DOUBLE)
         / NULLIF(SUM(`match` = 1), 0)                                  AS `recall`,
       (SUM(CASE WHEN `match` = 1 THEN mid_rank END) - SUM(`match`) * (SUM(`match`) + 1) / 2e0)
         / NULLIF(SUM(`match`) * SUM(1 - `match`), 0)                   AS auc,
       COUNT(DISTINCT CASE WHEN `match` IS NOT NULL THEN model_version END) AS model_versions_used
FROM (SELECT po.*,
             RANK() OVER (PARTITION BY `match` IS NULL ORDER BY probability)
               + (COUNT(*) OVER (PARTITION BY `match` IS NULL, probability) - 1) / 2e0 AS mid_rank
      FROM prediction_outcomes po) ranked;

-- The same per model version that scored: is the version scoring now better than earlier ones?
CREATE VIEW live_quality_per_version AS
SELECT model_version,
       COUNT(*)                                                         AS predictions,
       COUNT(`match`)                                                   AS with_outcome,
       COUNT(*) - COUNT(`match`)                                        AS awaiting_outcome,
       CAST(SUM(predicted = `match`) AS DOUBLE) / NULLIF(COUNT(`match`), 0) AS accuracy,
       1 - CAST(SUM(`match`) AS DOUBLE) / NULLIF(COUNT(`match`), 0)     AS accuracy_baseline,
       CAST(SUM(predicted = 1 AND `match` = 1) AS DOUBLE)
         / NULLIF(SUM(predicted = 1 AND `match` IS NOT NULL), 0)        AS `precision`,
       CAST(SUM(predicted = 1 AND `match` = 1) AS DOUBLE)
         / NULLIF(SUM(`match` = 1), 0)                                  AS `recall`,
       (SUM(CASE WHEN `match` = 1 THEN mid_rank END) - SUM(`match`) * (SUM(`match`) + 1) / 2e0)
         / NULLIF(SUM(`match`) * SUM(1 - `match`), 0)                   AS auc
FROM (SELECT po.*,
             RANK() OVER (PARTITION BY model_version, `match` IS NULL ORDER BY probability)
               + (COUNT(*) OVER (PARTITION BY model_version, `match` IS NULL, probability) - 1)
                 / 2e0 AS mid_rank
      FROM prediction_outcomes po) ranked
GROUP BY model_version;

-- Tumbling one-minute windows over when the outcomes became known: how good the predictions
-- judged in each minute were (judged predictions only: an awaited one has no minute yet).
CREATE VIEW live_quality_per_minute AS
SELECT `minute`,
       COUNT(*)                                                         AS with_outcome,
       CAST(SUM(predicted = `match`) AS DOUBLE) / COUNT(*)              AS accuracy,
       1 - CAST(SUM(`match`) AS DOUBLE) / COUNT(*)                      AS accuracy_baseline,
       CAST(SUM(predicted = 1 AND `match` = 1) AS DOUBLE)
         / NULLIF(SUM(predicted = 1), 0)                                AS `precision`,
       CAST(SUM(predicted = 1 AND `match` = 1) AS DOUBLE)
         / NULLIF(SUM(`match` = 1), 0)                                  AS `recall`,
       (SUM(CASE WHEN `match` = 1 THEN mid_rank END) - SUM(`match`) * (SUM(`match`) + 1) / 2e0)
         / NULLIF(SUM(`match`) * SUM(1 - `match`), 0)                   AS auc,
       COUNT(DISTINCT model_version)                                    AS model_versions_used
FROM (SELECT judged.*,
             RANK() OVER (PARTITION BY `minute` ORDER BY probability)
               + (COUNT(*) OVER (PARTITION BY `minute`, probability) - 1) / 2e0 AS mid_rank
      FROM (SELECT po.*, DATE_FORMAT(po.outcome_known_at, '%Y-%m-%d %H:%i:00') AS `minute`
            FROM prediction_outcomes po
            WHERE po.`match` IS NOT NULL) judged) ranked
GROUP BY `minute`;

-- --- Staleness: how old the model was that made each prediction ----------------------------
-- Per prediction: its version's kind (learned or rollback, model_lineage), when that version was
-- trained (training_metrics.trained_at) and the seconds from then to scored_at; then what had
-- been published after that version and before the prediction was made: the rows those later
-- versions learnt (a rollback learns none) and how many versions they were. A version made by
-- `matchstream model rollback` has no training_metrics row: its trained_at and model_age_seconds
-- are NULL (its weights are its source version's, named in model_lineage.parent_version), its
-- other columns are filled, and its predictions are listed like any other.
CREATE VIEW prediction_staleness AS
SELECT p.id, p.model_version, v.kind, p.scored_at, m.trained_at,
       TIMESTAMPDIFF(MICROSECOND, m.trained_at, p.scored_at) / 1e6 AS model_age_seconds,
       COALESCE(SUM(newer.`rows`), 0)                              AS rows_learnt_since,
       COUNT(newer.model_version)                                  AS versions_behind
FROM predictions p
LEFT JOIN model_lineage v ON v.model_version = p.model_version
LEFT JOIN training_metrics m ON m.model_version = p.model_version
LEFT JOIN model_lineage newer
       ON newer.model_version > p.model_version AND newer.created_at <= p.scored_at
GROUP BY p.id, p.model_version, v.kind, p.scored_at, m.trained_at;
-- Training batches where the model's inputs or its error moved (docs/model.md, "Drift"):
-- one row per alarm. kind says which detector fired; the threshold is the trainer's.
CREATE VIEW drift_alerts AS
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

-- --- Alerts on Kafka -------------------------------------------------------------------------
-- The alerts not yet on the `alerts` topic: match_alerts without the ids alerts_published holds
-- (what the publisher's SELECT ... INTO KAFKA sends next, sql/alerts/publish.sql).
CREATE VIEW alerts_to_publish AS
SELECT a.id, a.probability, a.`threshold`, a.model_version, a.scored_at
FROM match_alerts a
WHERE a.id NOT IN (SELECT id FROM alerts_published);

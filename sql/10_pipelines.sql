-- matchstream: the two pipelines. Placeholders ${NAME} are filled in by
-- `matchstream sql --var NAME=VALUE` (setup.sh and `matchstream demo` pass them):
--   ${KAFKA}       broker host:port as the database sees it (local 127.0.0.1:9092, docker kafka:29092)
--   ${TRANSFORMS}  absolute directory of train.py and score.py
--   ${MODEL_DIR}   absolute model directory shared by both transforms
--   ${FEATURES}    absolute path of the feature spec (data/features.json)
-- docker/pipeline-vars.env holds the container values; docs/pipeline-grammar.md the syntax.

USE speed_dating;

-- Training: batches of at most 500 messages per partition; each batch is first scored by the
-- current model (metrics), then learned from, and saved as a new model version, exactly once:
-- a retried batch is recognised by its input fingerprint and reloads the same row.
CREATE OR REPLACE PIPELINE training AS
LOAD DATA KAFKA '${KAFKA}/training'
BATCH_INTERVAL 500
MAX_OFFSETS_PER_BATCH_PARTITION 500
WITH TRANSFORM ('file://localhost${TRANSFORMS}/train.py', '', '--model-dir ${MODEL_DIR} --spec ${FEATURES}')
INTO TABLE training_metrics
FIELDS TERMINATED BY '\t'
LINES TERMINATED BY '\n'
(model_version, `rows`, positives, accuracy, accuracy_baseline, auc, auc_precision_recall,
 average_loss, `precision`, recall, f1, label_mean, prediction_mean, threshold, rows_seen_total,
 trained_at, train_seconds, skipped_rows, parent_version, input_fingerprint)
SET loaded_at = NOW(6);

-- Scoring: small batches so predictions follow the newest model version closely. Until the first
-- version exists, score.py waits up to 60 s, then fails the batch (and the engine retries).
CREATE OR REPLACE PIPELINE scoring AS
LOAD DATA KAFKA '${KAFKA}/scoring'
BATCH_INTERVAL 500
MAX_OFFSETS_PER_BATCH_PARTITION 100
WITH TRANSFORM ('file://localhost${TRANSFORMS}/score.py', '', '--model-dir ${MODEL_DIR} --wait-for-model 60')
REPLACE
INTO TABLE predictions
FIELDS TERMINATED BY '\t'
LINES TERMINATED BY '\n'
(id, probability, predicted, model_version, scored_at)
SET loaded_at = NOW(6);

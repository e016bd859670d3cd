-- matchstream: the training, scoring and outcomes pipelines, their reject pipelines, and
-- alerts_published (the `alerts` topic loaded back, for the exactly-once publisher). Placeholders ${NAME} are
-- filled in by `matchstream sql --var NAME=VALUE` (setup.sh and `matchstream demo` pass them):
--   ${KAFKA}       broker host:port as the database sees it (local 127.0.0.1:9092, docker kafka:29092)
--   ${TRANSFORMS}  absolute directory of train.py, score.py, outcomes.py and rejects.py
--   ${MODEL_DIR}   absolute model directory shared by both transforms
--   ${FEATURES}    absolute path of the feature spec (data/features.json)
-- docker/pipeline-vars.env holds the container values; docs/pipeline-grammar.md the syntax.

USE speed_dating;

-- Training: batches of at most 500 messages per partition; each batch is first scored by the
-- current model (metrics), then learned from, and saved as a new model version, exactly once:
-- a retried batch is recognised by its input fingerprint and reloads the same row.
-- A bad message is left out (skipped_rows counts it) and recorded by training_rejects below,
-- so one bad message cannot stop the pipeline.
CREATE OR REPLACE PIPELINE training AS
LOAD DATA KAFKA '${KAFKA}/training'
BATCH_INTERVAL 500
MAX_OFFSETS_PER_BATCH_PARTITION 500
WITH TRANSFORM ('file://localhost${TRANSFORMS}/train.py', '', '--model-dir ${MODEL_DIR} --spec ${FEATURES} --on-bad-row skip')
INTO TABLE training_metrics
FIELDS TERMINATED BY '\t'
LINES TERMINATED BY '\n'
(model_version, `rows`, positives, accuracy, accuracy_baseline, auc, auc_precision_recall,
 average_loss, `precision`, `recall`, f1, label_mean, prediction_mean, `threshold`, rows_seen_total,
 trained_at, train_seconds, skipped_rows, parent_version, input_fingerprint, psi_max,
 psi_worst, feature_drift, error_drift, error_drift_score)
SET loaded_at = NOW(6);

-- Scoring: small batches so predictions follow the newest model version closely. Until the first
-- version exists, score.py waits up to 60 s, then fails the batch (and the engine retries).
-- A bad message is left out and recorded by scoring_rejects below.
CREATE OR REPLACE PIPELINE scoring AS
LOAD DATA KAFKA '${KAFKA}/scoring'
BATCH_INTERVAL 500
MAX_OFFSETS_PER_BATCH_PARTITION 100
WITH TRANSFORM ('file://localhost${TRANSFORMS}/score.py', '', '--model-dir ${MODEL_DIR} --wait-for-model 60 --on-bad-row skip')
REPLACE
INTO TABLE predictions
FIELDS TERMINATED BY '\t'
LINES TERMINATED BY '\n'
(id, probability, predicted, model_version, scored_at)
SET loaded_at = NOW(6);

-- Outcomes: the true outcome of each scored date, sent on its own topic when it becomes known
-- (in real use, long after scoring). REPLACE: a later outcome for the same id corrects the
-- earlier one. outcomes.py checks each id,match row like the producer does; a bad message is
-- left out and recorded by outcomes_rejects below.
CREATE OR REPLACE PIPELINE outcomes AS
LOAD DATA KAFKA '${KAFKA}/outcomes'
BATCH_INTERVAL 500
MAX_OFFSETS_PER_BATCH_PARTITION 500
WITH TRANSFORM ('file://localhost${TRANSFORMS}/outcomes.py', '', '--spec ${FEATURES} --on-bad-row skip')
REPLACE
INTO TABLE outcomes
FIELDS TERMINATED BY '\t'
LINES TERMINATED BY '\n'
(id, `match`)
SET loaded_at = NOW(6);

-- The reject pipelines: the same topics again, through rejects.py, which decodes each message
-- with the decoder and spec of the pipeline above and prints a row only for the messages that
-- pipeline skips (docs/model.md, "Bad rows"). On SingleStore a successful transform's stderr is
-- seen by no one, so this is where skipped messages become visible. The same batch options as
-- the pipeline they watch: when both read data that is already there they cut the same batches,
-- and batch_fingerprint then equals training_metrics.input_fingerprint.
CREATE OR REPLACE PIPELINE training_rejects AS
LOAD DATA KAFKA '${KAFKA}/training'
BATCH_INTERVAL 500
MAX_OFFSETS_PER_BATCH_PARTITION 500
WITH TRANSFORM ('file://localhost${TRANSFORMS}/rejects.py', '', '--spec ${FEATURES} --rows training')
INTO TABLE rejected_rows
FIELDS TERMINATED BY '\t'
LINES TERMINATED BY '\n'
(batch_fingerprint, `position`, reason, message_bytes, message_sha256, message)
SET pipeline_name = 'training', batch_id = pipeline_batch_id(), loaded_at = NOW(6);

CREATE OR REPLACE PIPELINE scoring_rejects AS
LOAD DATA KAFKA '${KAFKA}/scoring'
BATCH_INTERVAL 500
MAX_OFFSETS_PER_BATCH_PARTITION 100
WITH TRANSFORM ('file://localhost${TRANSFORMS}/rejects.py', '', '--spec ${FEATURES} --rows scoring')
INTO TABLE rejected_rows
FIELDS TERMINATED BY '\t'
LINES TERMINATED BY '\n'
(batch_fingerprint, `position`, reason, message_bytes, message_sha256, message)
SET pipeline_name = 'scoring', batch_id = pipeline_batch_id(), loaded_at = NOW(6);

CREATE OR REPLACE PIPELINE outcomes_rejects AS
LOAD DATA KAFKA '${KAFKA}/outcomes'
BATCH_INTERVAL 500
MAX_OFFSETS_PER_BATCH_PARTITION 500
WITH TRANSFORM ('file://localhost${TRANSFORMS}/rejects.py', '', '--spec ${FEATURES} --rows outcomes')
INTO TABLE rejected_rows
FIELDS TERMINATED BY '\t'
LINES TERMINATED BY '\n'
(batch_fingerprint, `position`, reason, message_bytes, message_sha256, message)
SET pipeline_name = 'outcomes', batch_id = pipeline_batch_id(), loaded_at = NOW(6);

-- Alerts: the `alerts` topic loaded back into alerts_published (sql/00_schema.sql), the record
-- the publisher (`matchstream alerts`) reads to publish each alert exactly once. A message is one
-- tab-separated line (SELECT ... INTO KAFKA's default format): id, probability, threshold,
-- model_version, scored_at. SKIP DUPLICATE KEY ERRORS: an id already there keeps its first row.
CREATE OR REPLACE PIPELINE alerts_published AS
LOAD DATA KAFKA '${KAFKA}/alerts'
BATCH_INTERVAL 200
SKIP DUPLICATE KEY ERRORS
INTO TABLE alerts_published
FIELDS TERMINATED BY '\t'
LINES TERMINATED BY '\n'
(id, probability, `threshold`, model_version, scored_at)
SET loaded_at = NOW(6);

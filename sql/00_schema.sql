-- matchstream: tables of the speed-dating demo.
-- Portable between MariaDB (the local stack) and SingleStore (docker/): no engine-specific
-- table options. Re-running this file changes nothing.

CREATE DATABASE IF NOT EXISTS speed_dating;
USE speed_dating;

-- One row per training batch: the metrics row transforms/train.py prints (docs/model.md), in
-- that column order, plus when the batch was loaded. Metrics are measured on the batch *before*
-- the model learns from it (prequential), so they are honest held-out figures.
CREATE TABLE IF NOT EXISTS training_metrics (
    model_version        INT NOT NULL,
    `rows`               INT NOT NULL,
    positives            INT NOT NULL,
    accuracy             DOUBLE NULL,
    accuracy_baseline    DOUBLE NULL,
    auc                  DOUBLE NULL,
    auc_precision_recall DOUBLE NULL,
    average_loss         DOUBLE NULL,
    `precision`          DOUBLE NULL,
    `recall`               DOUBLE NULL,
    f1                   DOUBLE NULL,
    label_mean           DOUBLE NULL,
    prediction_mean      DOUBLE NULL,
    `threshold`            DOUBLE NOT NULL,
    rows_seen_total      BIGINT NOT NULL,
    trained_at           DATETIME(6) NOT NULL,
    train_seconds        DOUBLE NOT NULL,
    skipped_rows         INT NOT NULL,
    -- Lineage: the version this batch's model started from (NULL for the first) and the SHA-256
    -- of the batch's framed input. A retried batch is recognised by it and reloads this same row.
    parent_version       INT NULL,
    input_fingerprint    CHAR(64) NULL,
    -- Drift, measured on the batch before learning it (docs/model.md, "Drift"): the largest
    -- population stability index of a feature between the latest 500 rows and every row learnt
    -- before them, and the three features that moved most; feature_drift is 1 at PSI >= 0.25.
    -- error_drift is 1 when the Page-Hinkley test on the per-row prequential loss fired in this
    -- batch; error_drift_score is its statistic's highest value in the batch (alarm above 25).
    psi_max              DOUBLE NULL,
    psi_worst            VARCHAR(255) NULL,
    feature_drift        TINYINT NULL,
    error_drift          TINYINT NULL,
    error_drift_score    DOUBLE NULL,
    loaded_at            DATETIME(6) NULL,
    PRIMARY KEY (model_version)
);

-- What operators did to the model with `matchstream model` (rollback, pin, unpin). A rollback
-- publishes a new version, a copy of an earlier one: that version is explained by its row here,
-- every learned version by its row in training_metrics.
CREATE TABLE IF NOT EXISTS model_actions (
    action_id      BIGINT NOT NULL AUTO_INCREMENT,
    `action`         VARCHAR(16) NOT NULL,
    model_version  INT NULL,
    source_version INT NULL,
    live_before    INT NULL,
    acted_at       DATETIME(6) NOT NULL,
    note           VARCHAR(255) NULL,
    PRIMARY KEY (action_id)
);

-- One row per scored date: the newest prediction for it (the scoring pipeline REPLACEs).
CREATE TABLE IF NOT EXISTS predictions (
    id            BIGINT NOT NULL,
    probability   DOUBLE NOT NULL,
    predicted     TINYINT NOT NULL,
    model_version INT NOT NULL,
    scored_at     DATETIME(6) NOT NULL,
    loaded_at     DATETIME(6) NULL,
    PRIMARY KEY (id),
    KEY (model_version),
    KEY (scored_at)
);

-- The true outcome of each scored date, as it became known: the outcomes pipeline loads the
-- `outcomes` topic (id,match rows, sent some time after the date was scored) and REPLACEs, so a
-- later outcome for the same id corrects the earlier one. loaded_at is when this outcome became
-- known; the live-quality views join predictions with what is here so far, and count the
-- predictions whose outcome has not arrived instead of dropping them.
CREATE TABLE IF NOT EXISTS outcomes (
    id        BIGINT NOT NULL,
    `match`   TINYINT NOT NULL,
    loaded_at DATETIME(6) NULL,
    PRIMARY KEY (id),
    KEY (loaded_at)
);

-- One row per message the demo pipelines left out as a bad row (`--on-bad-row skip`), written by
-- the companion pipelines training_rejects, scoring_rejects and outcomes_rejects
-- (transforms/rejects.py; columns in docs/model.md, "Bad rows"). batch_id is the reject pipeline's batch (pipeline_batch_id())
-- and position the message's index in its batch partition: the message's Kafka offset is that
-- batch partition's BATCH_EARLIEST_OFFSET + position. batch_fingerprint joins
-- training_metrics.input_fingerprint when both pipelines cut the same batch.
-- message holds the first 64 KiB byte for byte; message_bytes and message_sha256 the whole.
-- No primary key: the natural one, (pipeline_name, batch_fingerprint, position), is not unique
-- (the same bad message alone in two batches gives two equal rows, and both were sent), and a
-- duplicate-key error would stop the one pipeline that must never stop. Each row is loaded once
-- with its batch's cursor move, like every pipeline row.
CREATE TABLE IF NOT EXISTS rejected_rows (
    pipeline_name     VARCHAR(64) NOT NULL,
    batch_id          BIGINT NULL,
    batch_fingerprint CHAR(64) NOT NULL,
    `position`        INT NOT NULL,
    reason            VARCHAR(1024) NOT NULL,
    message_bytes     BIGINT NOT NULL,
    message_sha256    CHAR(64) NOT NULL,
    message           LONGBLOB NOT NULL,
    loaded_at         DATETIME(6) NULL,
    KEY (pipeline_name, loaded_at)
);

-- --- Alerts on Kafka (README, "Alerts on Kafka") ------------------------------------------
-- What is on the `alerts` topic: the pipeline alerts_published (sql/10_pipelines.sql) loads
-- every message of the topic back, so this table holds exactly the ids that were published,
-- once each (the primary key; a duplicate message would be skipped, never loaded twice). The
-- publisher (`matchstream alerts`, matchstream/alerts.py) publishes only the alerts not in it,
-- after the pipeline has caught up with the topic's end: the topic is the record, this table its
-- copy. The columns are the message's fields, in order (sql/alerts/publish.sql).
CREATE TABLE IF NOT EXISTS alerts_published (
    id            BIGINT NOT NULL,
    probability   DOUBLE NOT NULL,
    `threshold`   DOUBLE NOT NULL,
    model_version INT NOT NULL,
    scored_at     DATETIME(6) NOT NULL,
    loaded_at     DATETIME(6) NULL,
    PRIMARY KEY (id)
);

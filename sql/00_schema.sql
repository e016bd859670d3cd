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
    recall               DOUBLE NULL,
    f1                   DOUBLE NULL,
    label_mean           DOUBLE NULL,
    prediction_mean      DOUBLE NULL,
    threshold            DOUBLE NOT NULL,
    rows_seen_total      BIGINT NOT NULL,
    trained_at           DATETIME(6) NOT NULL,
    train_seconds        DOUBLE NOT NULL,
    skipped_rows         INT NOT NULL,
    loaded_at            DATETIME(6) NULL,
    PRIMARY KEY (model_version)
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

-- The true outcome of each scoring date (data/score_labels.csv), loaded after the fact so the
-- live accuracy of scoring can be measured; the scoring pipeline never sees it.
CREATE TABLE IF NOT EXISTS score_labels (
    id      BIGINT NOT NULL,
    `match` TINYINT NOT NULL,
    PRIMARY KEY (id)
);

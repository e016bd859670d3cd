"""Every SQL statement the dashboard and the report run, as plain parameterised strings.

All are read-only SELECTs over the tables and views of ``sql/`` and the pipeline catalog views,
written in the SQL that MariaDB (the local stack) and SingleStore (the container path) share:
no session settings, no correlated ``ORDER BY ... LIMIT`` subqueries, times returned as
``DATETIME`` or strings rather than through ``UNIX_TIMESTAMP`` (which would read them in the
session's time zone, while the transforms write UTC). The demo's tables are queried without a
schema, on a session whose default database is the one shown; the catalog queries name their
schema through ``{catalog}``, filled by :func:`catalog_query` with a quoted identifier:
``matchstream_catalog`` locally, ``information_schema`` on SingleStore.

What each returns is bounded (a ``LIMIT`` or a time window), so the page stays small. What
they read is not all bounded: the live-quality views (``live_scoring_accuracy``,
``live_quality_per_minute``, ``live_quality_per_version``) rank every prediction with window
functions on each call, so their cost grows with ``predictions``. On the demo's data (975
predictions) a whole refresh reads about 44,000 rows through the handlers, in memory; at 100,000
it takes seconds. So their rows are reused while their inputs are unchanged (snapshot.Reuse),
and the page waits longer between refreshes that take long (dashboard.js).
"""

from __future__ import annotations

from matchstream.ddl.render import quote_identifier

__all__ = [
    "CATALOG_QUERIES", "INPUTS_OF_LIVE", "LIVE", "QUERIES", "WINDOW_SECONDS", "catalog_query",
]

# How far back the time-based charts reach, counted back from the newest row (not from now(),
# so a finished run still shows its last ten minutes) and the most rows any chart holds.
WINDOW_SECONDS = 600
MAX_POINTS = 2000

QUERIES: dict[str, str] = {
    # One row of counters for the tiles at the top. The last four also say whether the inputs
    # of the live-quality views changed (snapshot.Reuse): a REPLACEd prediction or outcome
    # gets a newer scored_at or loaded_at, a deleted one lowers a count. KEY (scored_at) and
    # KEY (loaded_at) serve the MAXes.
    "totals": """
SELECT (SELECT COUNT(*) FROM training_metrics) AS versions_trained,
       (SELECT model_version FROM live_model_version) AS live_model_version,
       (SELECT COUNT(*) FROM rejected_rows) AS rejected_rows,
       (SELECT COUNT(*) FROM predictions) AS predictions,
       (SELECT MAX(scored_at) FROM predictions) AS last_scored_at,
       (SELECT COUNT(*) FROM outcomes) AS outcomes,
       (SELECT MAX(loaded_at) FROM outcomes) AS last_outcome_at
""",
    # Prequential quality of every model version (measured on its batch before learning it).
    "training": f"""
SELECT model_version, trained_at, batch_rows, rows_seen_total, accuracy, accuracy_baseline,
       auc, f1
FROM model_quality_trend
ORDER BY model_version DESC
LIMIT {MAX_POINTS}
""",
    # Live scoring against the outcomes known so far, overall.
    "live": """
SELECT scored, awaiting_outcome, accuracy, accuracy_baseline, `precision`, recall, auc,
       model_versions_used
FROM live_scoring_accuracy
""",
    "live_per_minute": f"""
SELECT minute, with_outcome, accuracy, accuracy_baseline, auc
FROM live_quality_per_minute
ORDER BY minute DESC
LIMIT {MAX_POINTS}
""",
    "live_per_version": f"""
SELECT model_version, predictions, with_outcome, accuracy, accuracy_baseline, auc
FROM live_quality_per_version
ORDER BY model_version DESC
LIMIT {MAX_POINTS}
""",
    # Predictions per second of scoring time over the last window of scoring (KEY (scored_at)
    # serves both the MAX and the range).
    "predictions_per_second": """
SELECT DATE_FORMAT(scored_at, '%%Y-%%m-%%d %%H:%%i:%%s') AS second, COUNT(*) AS predictions
FROM predictions
WHERE scored_at >= (SELECT MAX(scored_at) FROM predictions) - INTERVAL %(window)s SECOND
GROUP BY DATE_FORMAT(scored_at, '%%Y-%%m-%%d %%H:%%i:%%s')
ORDER BY second
""",
    "drift": """
SELECT model_version, trained_at, kind, score, detail
FROM drift_alerts
ORDER BY model_version DESC, kind
LIMIT 10
""",
}

# The queries over every prediction, and the columns of "totals" that change when what they
# read changes.
LIVE = ("live", "live_per_minute", "live_per_version")
INPUTS_OF_LIVE = ("predictions", "last_scored_at", "outcomes", "last_outcome_at")

CATALOG_QUERIES: dict[str, str] = {
    "pipelines": """
SELECT PIPELINE_NAME, STATE, CONFIG_JSON
FROM {catalog}.PIPELINES
WHERE DATABASE_NAME = %(database)s
ORDER BY PIPELINE_NAME
""",
    # Lag as the engine last saw it: messages between each partition's cursor and its end.
    "lag": """
SELECT PIPELINE_NAME, SUM(GREATEST(LATEST_OFFSET - CURSOR_OFFSET, 0)) AS lag,
       COUNT(LATEST_OFFSET) AS partitions_seen, MAX(UPDATED_UNIX_TIMESTAMP) AS seen_at
FROM {catalog}.PIPELINES_CURSORS
WHERE DATABASE_NAME = %(database)s
GROUP BY PIPELINE_NAME
""",
    # Successful batches of the last window of batch activity, one row per batch (a batch has a
    # row per partition and attempt).
    "batches": f"""
SELECT PIPELINE_NAME, BATCH_ID, MIN(BATCH_START_UNIX_TIMESTAMP) AS started,
       MAX(BATCH_TIME) AS batch_time, SUM(BATCH_ROWS_WRITTEN) AS rows_written
FROM {{catalog}}.PIPELINES_BATCHES
WHERE DATABASE_NAME = %(database)s AND BATCH_STATE = 'Succeeded'
  AND BATCH_START_UNIX_TIMESTAMP >= (SELECT MAX(BATCH_START_UNIX_TIMESTAMP)
                                     FROM {{catalog}}.PIPELINES_BATCHES
                                     WHERE DATABASE_NAME = %(database)s) - %(window)s
GROUP BY PIPELINE_NAME, BATCH_ID
ORDER BY started DESC
LIMIT {MAX_POINTS}
""",
    # The latest errors and warnings with where they happened.
    "errors": """
SELECT ERROR_ID, ERROR_UNIX_TIMESTAMP, PIPELINE_NAME, ERROR_TYPE, ERROR_KIND, ERROR_CODE,
       ERROR_MESSAGE, SUBSTRING(STD_ERROR, 1, 2000) AS std_error, BATCH_ID,
       BATCH_SOURCE_PARTITION_ID, BATCH_EARLIEST_OFFSET, BATCH_LATEST_OFFSET,
       LOAD_DATA_LINE_NUMBER
FROM {catalog}.PIPELINES_ERRORS
WHERE DATABASE_NAME = %(database)s
ORDER BY ERROR_UNIX_TIMESTAMP DESC, ERROR_ID DESC
LIMIT 20
""",
}


def catalog_query(name: str, catalog: str) -> str:
    """The catalog query ``name`` reading the views in schema ``catalog``.

    >>> print(catalog_query("pipelines", "information_schema").split("FROM ")[1].split()[0])
    `information_schema`.PIPELINES
    """
    return CATALOG_QUERIES[name].replace("{catalog}", quote_identifier(catalog))

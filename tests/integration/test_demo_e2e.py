"""The main job end to end on the local stack: engine, both pipelines, both transforms."""

from __future__ import annotations

import pytest

from matchstream.config import Config
from matchstream.db import connect
from matchstream.demo import DemoOptions, run_demo
from matchstream.engine.catalog import CATALOG_SCHEMA
from matchstream.ml.store import DEFAULT_KEEP, ModelStore
from matchstream.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCORE_ROWS = 975  # data rows of data/score.csv
WITHHELD = SCORE_ROWS // 50  # the demo never sends every 50th outcome


def query(config: Config, sql: str) -> list[tuple[object, ...]]:
    conn = connect(config, "speed_dating")
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql)
            return list(cursor.fetchall())
    finally:
        conn.close()


def test_demo_trains_and_scores_concurrently_with_every_row_once(stack: Config) -> None:
    engine_stack = Stack(stack)  # the session stack plus the engine process
    assert engine_stack.engine is not None
    engine_stack.up()
    lines: list[str] = []
    try:
        text = run_demo(stack, DemoOptions(reset=True, score_rate=25.0, outcome_delay_s=5.0),
                        emit=lines.append)
    finally:
        engine_stack.engine.process.stop()
    print("\n".join([*lines, text]))  # the run's output, for whoever reads the test log

    # Exactly one prediction per scoring row, no more, no less.
    assert query(stack, "SELECT COUNT(*), COUNT(DISTINCT id) FROM predictions") == [
        (SCORE_ROWS, SCORE_ROWS)
    ]
    # Every prediction used a version that existed (was trained) when it was scored.
    assert query(
        stack,
        "SELECT COUNT(*) FROM predictions p LEFT JOIN training_metrics m "
        "ON m.model_version = p.model_version "
        "WHERE m.model_version IS NULL OR m.trained_at > p.scored_at",
    ) == [(0,)]
    # Training and scoring overlapped: scoring saw several versions.
    ((versions_used,),) = query(stack, "SELECT COUNT(DISTINCT model_version) FROM predictions")
    assert versions_used >= 2, f"scoring used {versions_used} model version(s)"
    # One metrics row per successful training batch partition, covering all training rows.
    ((metrics_rows, rows_total),) = query(
        stack, "SELECT COUNT(*), SUM(`rows`) FROM training_metrics"
    )
    ((batches,),) = query(
        stack,
        f"SELECT COUNT(*) FROM `{CATALOG_SCHEMA}`.PIPELINES_BATCHES WHERE "
        "DATABASE_NAME = 'speed_dating' AND PIPELINE_NAME = 'training' "
        "AND BATCH_PARTITION_STATE = 'Succeeded' AND BATCH_SOURCE_PARTITION_ID IS NOT NULL "
        "AND BATCH_PARTITION_MESSAGES > 0",
    )
    assert metrics_rows == batches
    assert int(rows_total) == 3209
    # Learning exactly once: one published version per metrics row, a parent chain, and the
    # newest version counted every training row once.
    store = ModelStore(stack.state_dir / "models")
    versions = store.listed_versions()  # the newest DEFAULT_KEEP are retained
    loaded = [int(v) for (v,) in query(stack, "SELECT model_version FROM training_metrics "
                                       "ORDER BY model_version")]
    assert loaded == list(range(1, metrics_rows + 1))
    assert versions == loaded[-DEFAULT_KEEP:]
    assert store.latest_version() == versions[-1]
    assert store.read_json(versions[-1], "metadata.json")["rows_seen_total"] == 3209
    assert query(stack, "SELECT COUNT(*) FROM training_metrics WHERE NOT parent_version "
                 "<=> IF(model_version = 1, NULL, model_version - 1)") == [(0,)]
    assert query(stack, "SELECT COUNT(*) FROM model_lineage WHERE kind = 'learned'") == [
        (metrics_rows,)]

    # Outcomes streamed: all but the withheld ones arrived, each at least the delay after its
    # scoring row was sent, so most while scoring was still going on; the rest are awaited.
    assert any(f"{WITHHELD} never sent" in line for line in lines), lines
    assert query(stack, "SELECT COUNT(*) FROM outcomes") == [(SCORE_ROWS - WITHHELD,)]
    assert query(stack, "SELECT scored, awaiting_outcome FROM live_scoring_accuracy") == [
        (SCORE_ROWS - WITHHELD, WITHHELD)]
    ((overlap,),) = query(stack, "SELECT COUNT(*) FROM outcomes o WHERE o.loaded_at < "
                          "(SELECT MAX(loaded_at) FROM predictions)")
    assert overlap > 0, "no outcome arrived while scoring was still going on"
    assert query(stack, "SELECT SUM(awaiting_outcome), SUM(predictions) FROM "
                 "live_quality_per_version") == [(WITHHELD, SCORE_ROWS)]
    assert query(stack, "SELECT COUNT(*) FROM prediction_staleness") == [(SCORE_ROWS,)]
    assert query(stack, "SELECT COUNT(*) FROM rejected_rows") == [(0,)]

    # The summary a newcomer reads: live AUC beside accuracy, the awaited count, the threshold's
    # trade in words, with the figures of the live view (not constants).
    ((auc, precision, recall, always_no),) = query(
        stack, "SELECT auc, `precision`, recall, accuracy_baseline FROM live_scoring_accuracy")
    assert 0.5 < float(auc) < 1
    assert "| judged | awaiting_outcome | auc" in text
    assert f"{WITHHELD} predictions await their outcome" in text
    assert (f"catches {100 * float(recall):.0f}% of the real matches and "
            f"{100 * float(precision):.0f}% of its predicted matches are real; always answering "
            f'"no match" would be {100 * float(always_no):.0f}% accurate') in text
    assert "The five versions that scored the most dates" in text

    # Drift was measured on every batch (PSI once 500 rows are in the window and 500 before it;
    # Page-Hinkley always), and the alarms in the view are exactly the flagged batches.
    ((measured, with_psi, flagged),) = query(
        stack, "SELECT COUNT(error_drift_score), COUNT(psi_max), "
        "SUM(feature_drift) + SUM(error_drift) FROM training_metrics")
    assert measured == metrics_rows and 0 < with_psi < metrics_rows
    assert query(stack, "SELECT COUNT(*) FROM training_metrics WHERE psi_max IS NULL AND "
                 "rows_seen_total > 1500") == [(0,)]
    assert query(stack, "SELECT COUNT(*) FROM drift_alerts") == [(flagged,)]
    assert "Drift alarms (drift_alerts" in text

    # Alerts on Kafka: every row of match_alerts is on the alerts topic exactly once (read with a
    # standard client), alerts_published holds the same ids, and the summary says so.
    from collections import Counter

    from kafka import KafkaConsumer

    expected = {int(i) for (i,) in query(stack, "SELECT id FROM match_alerts")}
    assert expected, "the demo raised no alert"
    consumer = KafkaConsumer("alerts", bootstrap_servers=stack.kafka_bootstrap,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=3000)
    try:
        on_topic = Counter(int(m.value.split(b"\t")[0]) for m in consumer)
    finally:
        consumer.close()
    assert set(on_topic) == expected and max(on_topic.values()) == 1
    assert {int(i) for (i,) in query(stack, "SELECT id FROM alerts_published")} == expected
    assert f"published {len(expected)} alerts to topic alerts" in "\n".join(lines)
    assert "| match_alerts | on_alerts_topic | not_yet_published |" in text

    # Every question of sql/queries runs on the demo's database as `matchstream sql` runs it.
    from matchstream.config import project_root
    from matchstream.sqlrunner import ScriptSource, default_variables, run_sources

    root = project_root()
    for path in sorted((root / "sql" / "queries").glob("*.sql")):
        printed: list[str] = []
        run_sources([ScriptSource.from_file(path)], config=stack,
                    variables=default_variables(stack), emit=printed.append)
        assert printed and all("row" in p for p in printed), (path.name, printed)

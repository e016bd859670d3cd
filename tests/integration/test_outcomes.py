"""Outcomes that arrive late, on their own topic: the live-quality and staleness views.

The demo's sql/ runs in a private database on private topics (tests/integration/test_bad_rows.py's
``Private``). Two model versions score two rounds of dates (some dates sent twice under new ids,
so tied probabilities straddle both classes); only then are the outcomes produced, all but a
withheld few, one first sent wrong and then corrected, with a bad message among them. The
views' figures per version, overall and per minute must equal NumPy / scikit-learn on the same
rows (1e-9); the withheld ones must be counted as awaiting, and the bad message recorded.
"""

from __future__ import annotations

import math
import re
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kafka.admin import KafkaAdminClient, NewTopic
from sklearn.metrics import roc_auc_score

from matchstream.config import Config
from matchstream.ddl import split_statements
from matchstream.ml.trainer_link import stop_trainer
from matchstream.stack import Stack

from ..conftest import REPO
from .test_bad_rows import DEADLINE_S, SCORE_CSV, TRAIN_CSV, Private, errors, produce

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LABELS = {int(i): int(m) for i, m in (line.decode().split(",")
                                      for line in (REPO / "data" / "score_labels.csv")
                                      .read_bytes().splitlines()[1:])}
WITHHELD_EVERY = 10  # every 10th scored date never gets its outcome
TWIN_BASE = 9_000_000_000  # ids of the dates sent a second time (same features, new id)


@pytest.fixture
def env(stack: Config, tmp_path: Path) -> Iterator[Private]:
    private = Private(stack, tmp_path, REPO / "data" / "features.json")
    admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    admin.create_topics([NewTopic(t, num_partitions=1, replication_factor=1)
                         for t in private.topics.values()])
    engine_stack = Stack(stack)
    assert engine_stack.engine is not None
    try:
        engine_stack.up()
        private.apply_sql()
        yield private
    finally:
        engine_stack.engine.process.stop()
        stop_trainer(private.model_dir)
        private.cleanup()
        admin.delete_topics(list(private.topics.values()))
        admin.close()


def wait_for(env: Private, pipeline: str, offset: int) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while [int(c) for (c,) in env.catalog("PIPELINES_CURSORS", "CURSOR_OFFSET", pipeline)] != [
            offset]:
        assert env.catalog("PIPELINES", "STATE", pipeline) == [("Running",)], errors(env, pipeline)
        assert time.monotonic() < deadline, f"{pipeline} not at {offset} after {DEADLINE_S:.0f} s"
        time.sleep(0.3)


def with_twins(rows: list[bytes], twins: int) -> list[bytes]:
    """``rows`` and, after them, the first ``twins`` again under new ids: same features, so the
    same version gives them the same probability."""
    copies = [str(TWIN_BASE + int(r.split(b",", 1)[0])).encode() + b"," + r.split(b",", 1)[1]
              for r in rows[:twins]]
    return rows + copies


def true_outcome(row_id: int) -> int:
    if row_id >= TWIN_BASE:  # a twin gets the opposite of its original: ties across classes
        return 1 - LABELS[row_id - TWIN_BASE]
    return LABELS[row_id]


def figures(rows: list[tuple[int, float, int, int | None]]) -> dict[str, Any]:
    """accuracy, always-no-match, precision, recall, AUC of (id, probability, predicted,
    outcome) rows, with NumPy and scikit-learn; None where the view gives NULL."""
    judged = [r for r in rows if r[3] is not None]
    y = np.array([r[3] for r in judged], dtype=int)
    predicted = np.array([r[2] for r in judged], dtype=int)
    probability = np.array([r[1] for r in judged])
    hits = int(np.sum((predicted == 1) & (y == 1)))
    return {
        "with_outcome": len(judged),
        "awaiting_outcome": len(rows) - len(judged),
        "accuracy": float(np.mean(predicted == y)) if len(judged) else None,
        "accuracy_baseline": float(1 - np.mean(y)) if len(judged) else None,
        "precision": hits / int(predicted.sum()) if predicted.sum() else None,
        "recall": hits / int(y.sum()) if y.sum() else None,
        "auc": float(roc_auc_score(y, probability)) if 0 < y.sum() < len(y) else None,
    }


def assert_close(got: dict[str, Any], want: dict[str, Any], what: str) -> None:
    for key, expected in want.items():
        value = got[key]
        if expected is None:
            assert value is None, (what, key, value)
        else:
            assert value is not None and math.isclose(float(value), expected, rel_tol=0,
                                                      abs_tol=1e-9), (what, key, value, expected)


def view(env: Private, name: str, key: str = "") -> list[dict[str, Any]]:
    with env.conn.cursor() as cursor:
        env.conn.commit()
        cursor.execute(f"SELECT * FROM `{env.database}`.`{name}`" + (f" ORDER BY {key}"
                                                                      if key else ""))
        columns = [d[0] for d in cursor.description]
        return [dict(zip(columns, r, strict=True)) for r in cursor.fetchall()]


def query_file(env: Private, name: str) -> list[list[dict[str, Any]]]:
    """The SELECTs of sql/queries/<name> on the private database, each as a list of rows."""
    text = re.sub(r"\bspeed_dating\b", env.database, (REPO / "sql" / "queries" / name).read_text())
    results = []
    for stmt in split_statements(text, name):
        if stmt.text.lstrip().upper().startswith("USE"):
            continue
        with env.conn.cursor() as cursor:
            cursor.execute(f"USE `{env.database}`")
            cursor.execute(stmt.text)
            columns = [d[0] for d in cursor.description]
            results.append([dict(zip(columns, r, strict=True)) for r in cursor.fetchall()])
    return results


def test_late_outcomes_are_joined_and_the_live_figures_match_sklearn(env: Private) -> None:
    topics = env.topics
    # Two training rounds make versions 1 and 2; each scores its own round of dates.
    train_rows, rounds = TRAIN_CSV[1:241], [SCORE_CSV[1:61], SCORE_CSV[61:121]]
    produce(env.config, topics["training"], train_rows[:120])
    env.sql("START PIPELINE training; START PIPELINE scoring; START PIPELINE outcomes; "
            "START PIPELINE outcomes_rejects")
    wait_for(env, "training", 120)
    sent_scoring = 0
    scoring_rows: list[bytes] = []
    for number, round_rows in enumerate(rounds):
        if number:
            produce(env.config, topics["training"], train_rows[120:])
            wait_for(env, "training", 240)
        batch = with_twins(round_rows, 8)
        produce(env.config, topics["scoring"], batch)
        sent_scoring += len(batch)
        scoring_rows += batch
        wait_for(env, "scoring", sent_scoring)
    ids = [int(r.split(b",", 1)[0]) for r in scoring_rows]
    ((last_prediction,),) = env.db(f"SELECT MAX(loaded_at) FROM `{env.database}`.predictions")

    # Outcomes, late: every prediction is loaded before the first one is sent. One is sent wrong
    # first and corrected later; one bad message goes among them.
    corrected = ids[1]
    produce(env.config, topics["outcomes"], [f"{corrected},{1 - true_outcome(corrected)}".encode()])
    wait_for(env, "outcomes", 1)
    withheld = set(ids[WITHHELD_EVERY - 1::WITHHELD_EVERY])
    outcomes = [f"{i},{true_outcome(i)}".encode() for i in ids if i not in withheld]
    outcomes.insert(5, b"not-an-id,1")
    produce(env.config, topics["outcomes"], outcomes)
    wait_for(env, "outcomes", 1 + len(outcomes))
    wait_for(env, "outcomes_rejects", 1 + len(outcomes))

    # The bad message: recorded once, the pipeline still Running, no batch failed.
    assert env.db(f"SELECT pipeline_name, message, reason FROM `{env.database}`.rejected_rows") == [
        ("outcomes", b"not-an-id,1", "column 'id': id must be an integer that fits BIGINT "
         "(outcomes.id), got 'not-an-id'")]
    assert env.catalog("PIPELINES", "STATE", "outcomes") == [("Running",)]
    assert errors(env, "outcomes") == []

    rows = env.db(
        f"SELECT p.id, p.model_version, p.probability, p.predicted, o.`match`, o.loaded_at "
        f"FROM `{env.database}`.predictions p LEFT JOIN `{env.database}`.outcomes o "
        "ON o.id = p.id ORDER BY p.id")
    assert sorted(r[0] for r in rows) == sorted(ids)
    assert {r[0]: r[4] for r in rows} == {i: None if i in withheld else true_outcome(i)
                                          for i in ids}  # the correction replaced the first
    assert all(r[5] > last_prediction for r in rows if r[5] is not None)  # they came late
    by_version: dict[int, list[tuple[int, float, int, int | None]]] = defaultdict(list)
    for row_id, version, probability, predicted, outcome, _ in rows:
        by_version[version].append((row_id, probability, predicted, outcome))
    assert sorted(by_version) == [1, 2]
    # The tie rule is exercised: some probability is shared by a match and a non-match.
    ties: dict[tuple[int, float], set[int]] = defaultdict(set)
    for _, version, probability, _, outcome, _ in rows:
        if outcome is not None:
            ties[(version, probability)].add(outcome)
    assert sum(1 for labels in ties.values() if labels == {0, 1}) >= 3

    per_version = view(env, "live_quality_per_version", "model_version")
    assert [v["model_version"] for v in per_version] == [1, 2]
    for got in per_version:
        version_rows = by_version[got["model_version"]]
        assert got["predictions"] == len(version_rows)
        assert_close(got, figures(version_rows), f"version {got['model_version']}")
    assert sum(v["awaiting_outcome"] for v in per_version) == len(withheld)

    everything = [r for version_rows in by_version.values() for r in version_rows]
    (overall,) = view(env, "live_scoring_accuracy")
    want = figures(everything)
    assert (overall["scored"], overall["awaiting_outcome"]) == (
        want.pop("with_outcome"), want.pop("awaiting_outcome"))
    assert_close(overall, want, "overall")
    assert overall["model_versions_used"] == 2

    by_minute: dict[str, list[tuple[int, float, int, int | None]]] = defaultdict(list)
    for row_id, _, probability, predicted, outcome, known_at in rows:
        if known_at is not None:
            by_minute[known_at.strftime("%Y-%m-%d %H:%M:00")].append(
                (row_id, probability, predicted, outcome))
    per_minute = view(env, "live_quality_per_minute", "minute")
    assert [m["minute"] for m in per_minute] == sorted(by_minute)
    for got in per_minute:
        want = figures(by_minute[got["minute"]])
        want.pop("awaiting_outcome")
        assert_close(got, want, f"minute {got['minute']}")

    # "The live model on the last 15 minutes": version 2, every outcome of it judged so far.
    live, live_counts = query_file(env, "07_live_model_recent.sql")
    (live_row,) = live
    want = figures(by_version[2])
    assert (live_row["live_model_version"], live_row["outcomes_in_window"]) == (
        2, want["with_outcome"])
    for key in ("accuracy", "precision", "recall", "auc"):
        assert abs(float(live_row[key]) - want[key]) <= 5e-4 + 1e-12, key
    assert live_counts == [{"model_version": 2, "predictions": len(by_version[2]),
                            "with_outcome": want["with_outcome"],
                            "awaiting_outcome": want["awaiting_outcome"]}]


def test_staleness_counts_what_was_learnt_after_the_scoring_version(env: Private) -> None:
    topics = env.topics
    produce(env.config, topics["training"], TRAIN_CSV[1:101])
    env.sql("START PIPELINE training; START PIPELINE scoring")
    wait_for(env, "training", 100)
    produce(env.config, topics["scoring"], SCORE_CSV[1:21])
    wait_for(env, "scoring", 20)
    produce(env.config, topics["training"], TRAIN_CSV[101:201])
    wait_for(env, "training", 200)
    db = f"`{env.database}`"
    # A rollback to version 1 (as `matchstream model rollback` records it: a model_actions row,
    # no training_metrics row), and a prediction it made; then a pin, then an unpin.
    ((trained_2,),) = env.db(f"SELECT trained_at FROM {db}.training_metrics "
                             "WHERE model_version = 2")
    acted_at = trained_2 + timedelta(seconds=1)
    scored_at = acted_at + timedelta(seconds=2)
    env.db(f"INSERT INTO {db}.model_actions (action, model_version, source_version, live_before, "
           "acted_at) VALUES ('rollback', 3, 1, 2, %s)", [acted_at])
    env.db(f"INSERT INTO {db}.predictions (id, probability, predicted, model_version, scored_at) "
           "VALUES (1, 0.5, 1, 3, %s)", [scored_at])
    env.conn.commit()
    assert view(env, "live_model_version") == [{"model_version": 3}]

    stale = {r["id"]: r for r in view(env, "prediction_staleness")}
    assert len(stale) == 21  # every prediction, the rollback version's too
    versions = env.db(f"SELECT model_version, `rows`, trained_at FROM {db}.training_metrics")
    assert sorted(v for v, _, _ in versions) == [1, 2]
    trained = {v: (rows, at) for v, rows, at in versions}
    made: dict[int, tuple[int, datetime]] = {**trained, 3: (0, acted_at)}
    for row_id, row in stale.items():
        version, scored = row["model_version"], row["scored_at"]
        newer = [v for v, (_, at) in made.items() if v > version and at <= scored]
        assert row["versions_behind"] == len(newer), row
        assert row["rows_learnt_since"] == sum(made[v][0] for v in newer), row
        if version == 3:
            assert row_id == 1 and row["kind"] == "rollback"
            assert row["trained_at"] is None and row["model_age_seconds"] is None
        else:
            assert row["kind"] == "learned" and version == 1
            age = (scored - trained[1][1]).total_seconds()
            assert math.isclose(float(row["model_age_seconds"]), age, abs_tol=1e-6), row
    # Predictions of version 1 made before version 2 existed are 0 behind, the rollback's
    # prediction came after version 2 and the rollback itself.
    assert {r["versions_behind"] for r in stale.values() if r["model_version"] == 1} == {0}

    per_version = query_file(env, "08_staleness.sql")[0]
    assert [(r["model_version"], r["kind"], r["predictions"]) for r in per_version] == [
        (1, "learned", 20), (3, "rollback", 1)]

    env.db(f"INSERT INTO {db}.model_actions (action, model_version, live_before, acted_at) "
           "VALUES ('pin', 1, 3, %s)", [scored_at])
    assert view(env, "live_model_version") == [{"model_version": 1}]
    env.db(f"INSERT INTO {db}.model_actions (action, live_before, acted_at) "
           "VALUES ('unpin', 1, %s)", [scored_at])
    assert view(env, "live_model_version") == [{"model_version": 3}]

"""Learning exactly once through the engine: the real training pipeline of sql/10_pipelines.sql,
the real train.py and its warm trainer, a fault injected at a named point, then recovery and the
invariants checked with SQL and the model directory:

* published versions == training_metrics rows == committed training batches;
* the newest version's rows_seen_total == training rows loaded == rows produced;
* every version's parent is the version before it, and its row's quality figures are those of
  the parent on that batch's rows (recomputed here with the NumPy scorer), i.e. on unseen rows.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from matchstream.config import ENV_PREFIX
from matchstream.ddl.script import prepare_script
from matchstream.engine import catalog
from matchstream.faults import ENV_FAULT, ENV_ONCE
from matchstream.framing import encode_frames
from matchstream.ml.features import decode_batch
from matchstream.ml.metrics import evaluate
from matchstream.ml.numpy_scorer import NumpyScorer
from matchstream.ml.spec import FeatureSpec
from matchstream.ml.store import ModelStore
from matchstream.ml.trainer_link import stop_trainer
from matchstream.sqlrunner import default_variables
from matchstream.stack.engine_process import prepend_interpreter

from ...conftest import REPO
from .conftest import Env, wait_for

pytestmark = [pytest.mark.integration]

SPEC_PATH = REPO / "data" / "features.json"
LINES = (REPO / "data" / "train.csv").read_bytes().splitlines()[1:]
ROWS = 600
BATCH = 200  # three batches


def _statement(path: Path, starts: str, variables: dict[str, str] | None = None) -> str:
    """One statement of one of our SQL files, split and filled as `matchstream sql` does it."""
    for stmt in prepare_script(path.read_text(), str(path), variables or {}):
        if re.search(rf"^{re.escape(starts)}", stmt.text, re.MULTILINE):
            return stmt.text
    raise AssertionError(f"no statement starting {starts!r} in {path}")


def setup_training(env: Env, model_dir: Path) -> None:
    """training_metrics and the training pipeline exactly as sql/ defines them, on this test's
    database and topic, with smaller batches."""
    env.db(_statement(REPO / "sql" / "00_schema.sql",
                      "CREATE TABLE IF NOT EXISTS training_metrics"))
    variables = {**default_variables(env.config), "MODEL_DIR": str(model_dir)}
    pipeline = _statement(REPO / "sql" / "10_pipelines.sql",
                          "CREATE OR REPLACE PIPELINE training", variables)
    pipeline = pipeline.replace(f"{env.kafka}/training'", f"{env.kafka}/{env.topic}'")
    pipeline = re.sub(r"MAX_OFFSETS_PER_BATCH_PARTITION \d+",
                      f"MAX_OFFSETS_PER_BATCH_PARTITION {BATCH}", pipeline)
    pipeline = pipeline.replace("BATCH_INTERVAL 500", "BATCH_INTERVAL 50")
    assert env.topic in pipeline and str(model_dir) in pipeline
    env.sql(pipeline)


class EngineProcess:
    """``python -m matchstream.engine`` on the session's stack, with extra environment."""

    def __init__(self, env: Env, log: Path, estimator: str = "linear") -> None:
        self.env, self.log, self.estimator = env, log, estimator
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, extra: dict[str, str] | None = None) -> None:
        child = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
        child.update(self.env.config.with_(transform_timeout_s=120.0).to_env())
        child["MATCHSTREAM_TRAINER_IDLE_SECONDS"] = "20"
        # sql/ names no estimator: train.py takes it from its variable, as a deployment would.
        child["MATCHSTREAM_MODEL"] = self.estimator
        child.update(extra or {})
        prepend_interpreter(child)  # train.py's `#!/usr/bin/env python3` finds this venv
        with self.log.open("ab") as sink:
            self.proc = subprocess.Popen([sys.executable, "-m", "matchstream.engine"], env=child,
                                         stdout=sink, stderr=sink)

    def wait_dead(self, timeout: float = 120) -> int:
        assert self.proc is not None
        code = self.proc.wait(timeout=timeout)
        self.proc = None
        return code

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture
def training(env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
             request: pytest.FixtureRequest) -> Iterator[tuple[Env, Path, EngineProcess]]:
    """The pipeline, a model directory and an engine; ``linear`` unless parametrised with the
    estimator (indirect)."""
    estimator = getattr(request, "param", "linear")
    # TEST PIPELINE runs train.py from this process, as `matchstream sql` would (the CLI puts
    # its interpreter first on PATH the same way).
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    monkeypatch.setenv("MATCHSTREAM_MODEL", estimator)
    model_dir = tmp_path / "models"
    setup_training(env, model_dir)
    engine = EngineProcess(env, tmp_path / "engine.log", estimator)
    try:
        yield env, model_dir, engine
    finally:
        engine.stop()
        stop_trainer(model_dir)


def produced(env: Env, count: int = ROWS) -> list[bytes]:
    env.produce(LINES[:count])
    return LINES[:count]


def wait_loaded(env: Env, rows: int, engine: EngineProcess) -> None:
    wait_for(lambda: env.cursors("training").get(0) == rows, timeout=180,
             what=f"cursor at {rows} (engine log: {engine.log})")


def committed_ranges(env: Env, partition: int = 0) -> list[tuple[int, int]]:
    rows = env.db(
        f"SELECT BATCH_EARLIEST_OFFSET, BATCH_LATEST_OFFSET FROM `{catalog.CATALOG_SCHEMA}`."
        "PIPELINES_BATCHES WHERE DATABASE_NAME = %s AND PIPELINE_NAME = 'training' AND "
        "BATCH_STATE = 'Succeeded' AND BATCH_SOURCE_PARTITION_ID = %s "
        "ORDER BY BATCH_EARLIEST_OFFSET", [env.database, str(partition)])
    return [(int(a), int(b)) for a, b in rows]


def assert_learned_exactly_once(env: Env, model_dir: Path,
                                produced: list[bytes] | dict[int, list[bytes]]) -> None:
    """The invariants of the module docstring; ``produced`` per partition (or partition 0)."""
    by_partition = produced if isinstance(produced, dict) else {0: produced}
    lines = [line for part in by_partition.values() for line in part]
    metrics = env.db("SELECT model_version, parent_version, `rows`, rows_seen_total, "
                     "input_fingerprint, accuracy, auc, threshold FROM training_metrics "
                     "ORDER BY model_version")
    store = ModelStore(model_dir)
    versions = store.listed_versions()
    ranges = [(p, a, b) for p in by_partition for a, b in committed_ranges(env, p)]
    # published versions == metrics rows == committed batches
    assert versions == [int(m[0]) for m in metrics] == list(range(1, len(ranges) + 1)), (
        versions, metrics, ranges)
    assert store.latest_version() == versions[-1]
    # the newest version counted every loaded row once
    assert sum(int(m[2]) for m in metrics) == len(lines) == int(metrics[-1][3])
    assert store.read_json(versions[-1], "metadata.json")["rows_seen_total"] == len(lines)
    spec = FeatureSpec.load(SPEC_PATH)
    by_fingerprint = {hashlib.sha256(encode_frames(by_partition[p][a:b])).hexdigest(): (p, a, b)
                      for p, a, b in ranges}
    for version, parent, rows, _, digest, accuracy, auc, threshold in metrics:
        assert parent == (None if version == 1 else version - 1)
        assert digest in by_fingerprint, f"version {version} learned no committed batch"
        partition, start, end = by_fingerprint.pop(digest)
        assert rows == end - start
        lineage = store.lineage(version)
        assert lineage is not None and lineage.input_fingerprint == digest
        if parent is None:
            continue
        # The row's figures are the parent's, on this batch: rows the parent never learnt.
        batch = decode_batch(by_partition[partition][start:end], spec, with_label=True)
        scorer = NumpyScorer.from_dict(store.read_json(parent, "model.json"))
        assert batch.labels is not None
        expected = evaluate(batch.labels, scorer.predict_proba(batch.numeric, batch.categorical),
                            scorer.threshold)
        assert threshold == pytest.approx(scorer.threshold, abs=1e-12)
        assert accuracy == pytest.approx(expected["accuracy"], abs=1e-9)
        assert auc == pytest.approx(expected["auc"], abs=1e-6)
    assert by_fingerprint == {}


def run_with_fault(training: tuple[Env, Path, EngineProcess], tmp_path: Path, point: str,
                   *, dies: bool) -> tuple[Env, Path, list[bytes]]:
    env, model_dir, engine = training
    marker = tmp_path / "fault-fired"
    engine.start({ENV_FAULT: point, ENV_ONCE: str(marker)})
    env.sql("START PIPELINE training")
    lines = produced(env)
    if dies:
        assert engine.wait_dead() == -9  # SIGKILL at the fault point
        assert marker.exists()
        engine.start()
    wait_loaded(env, len(lines), engine)
    assert marker.exists(), "the fault point was never reached"
    engine.stop()
    return env, model_dir, lines


@pytest.mark.parametrize("point", ["engine.after_transform", "engine.after_load",
                                   "engine.before_commit"])
def test_engine_killed_inside_a_training_batch(point: str, training: Any, tmp_path: Path) -> None:
    env, model_dir, lines = run_with_fault(training, tmp_path, point, dies=True)
    assert_learned_exactly_once(env, model_dir, lines)
    # The transform had published before the kill: the retry replayed that version's row.
    assert "replayed version 1" in (model_dir / ".trainer.log").read_text()


def test_metrics_row_that_fails_to_load_once(training: Any, tmp_path: Path) -> None:
    env, model_dir, lines = run_with_fault(training, tmp_path, "engine.after_load:error",
                                           dies=False)
    errors = env.errors("training")
    assert [e["ERROR_MESSAGE"] for e in errors if "fault injected" in str(e["ERROR_MESSAGE"])]
    assert_learned_exactly_once(env, model_dir, lines)


@pytest.mark.parametrize("point", ["trainer.after_learn", "trainer.after_publish"])
def test_warm_trainer_killed_mid_batch(point: str, training: Any, tmp_path: Path) -> None:
    env, model_dir, lines = run_with_fault(training, tmp_path, point, dies=False)
    assert_learned_exactly_once(env, model_dir, lines)


@pytest.mark.parametrize("training", ["dnn"], indirect=True)
@pytest.mark.parametrize(("point", "dies"), [("engine.before_commit", True),
                                             ("trainer.after_learn", False),
                                             ("trainer.after_publish", False)])
def test_the_dnn_learns_exactly_once_too(point: str, dies: bool, training: Any,
                                          tmp_path: Path) -> None:
    env, model_dir, lines = run_with_fault(training, tmp_path, point, dies=dies)
    assert_learned_exactly_once(env, model_dir, lines)
    store = ModelStore(model_dir)
    assert {store.read_json(v, "metadata.json")["estimator"] for v in store.listed_versions()
            } == {"dnn"}
    if dies:  # published before the kill: the retry, through the trainer, replayed it
        assert "replayed version 1" in (model_dir / ".trainer.log").read_text()


def test_stop_during_a_training_batch(training: Any, tmp_path: Path) -> None:
    """STOP while the trainer holds a published version whose row is not loaded: the batch is
    rolled back; after START the retry replays that version's row."""
    env, model_dir, engine = training
    marker = tmp_path / "fault-fired"
    engine.start({ENV_FAULT: "trainer.after_publish:sleep", ENV_ONCE: str(marker)})
    env.sql("START PIPELINE training")
    lines = produced(env)
    wait_for(marker.exists, timeout=120, what="the trainer inside a batch")
    env.sql("STOP PIPELINE training")
    # The engine notices the STOP, kills train.py and rolls the batch back; its runner ends.
    wait_for(lambda: f"{env.database}.training: 1 batches, 0 rows" in engine.log.read_text(),
             timeout=60, what="the runner to end on STOP")
    assert env.count("training_metrics") == 0
    assert ModelStore(model_dir).listed_versions() == [1]  # published, row not loaded
    env.sql("START PIPELINE training")
    wait_loaded(env, len(lines), engine)
    engine.stop()
    assert "replayed version 1" in (model_dir / ".trainer.log").read_text()
    assert_learned_exactly_once(env, model_dir, lines)


def test_database_session_killed_during_a_training_batch(training: Any, tmp_path: Path) -> None:
    env, model_dir, engine = training
    marker = tmp_path / "fault-fired"
    engine.start({ENV_FAULT: "engine.after_load:sleep", ENV_ONCE: str(marker)})
    env.sql("START PIPELINE training")
    lines = produced(env)
    wait_for(marker.exists, timeout=120, what="a batch inside its transaction")
    sessions = wait_for(lambda: env.db(
        "SELECT trx_mysql_thread_id FROM information_schema.INNODB_TRX "
        "WHERE trx_mysql_thread_id <> CONNECTION_ID()"), timeout=10, what="the batch session")
    for (thread_id,) in sessions:
        env.db(f"KILL {int(thread_id)}")
    wait_loaded(env, len(lines), engine)
    engine.stop()
    # The killed session rolled the batch back (its failure could not even be recorded on it:
    # issue 10), and the retry replayed the version the trainer had published.
    assert "replayed version 1" in (model_dir / ".trainer.log").read_text()
    assert_learned_exactly_once(env, model_dir, lines)


def tree(path: Path) -> dict[str, bytes]:
    if not path.exists():
        return {}
    return {str(p.relative_to(path)): (b"<dir>" if p.is_dir() else p.read_bytes())
            for p in sorted(path.rglob("*"))}


@pytest.mark.parametrize("training", ["linear", "dnn"], indirect=True)
def test_test_pipeline_leaves_the_model_directory_byte_identical(training: Any) -> None:
    env, model_dir, engine = training
    produced(env, BATCH)
    result = env.sql("TEST PIPELINE training")  # no model directory yet
    assert len(result.rows) == 1 and not model_dir.exists()  # type: ignore[union-attr]
    engine.start()
    env.sql("START PIPELINE training")
    wait_loaded(env, BATCH, engine)
    env.sql("STOP PIPELINE training")
    wait_for(lambda: f"{env.database}.training: 1 batches, 1 rows" in engine.log.read_text(),
             timeout=60, what="the runner to end on STOP")
    env.produce(LINES[BATCH:2 * BATCH])
    before = tree(model_dir)
    result = env.sql("TEST PIPELINE training")
    tested = result.rows  # type: ignore[union-attr]
    assert len(tested) == 1 and tested[0][0] == 2  # the version it would publish
    assert tree(model_dir) == before
    env.sql("START PIPELINE training")
    wait_loaded(env, 2 * BATCH, engine)
    engine.stop()
    assert_learned_exactly_once(env, model_dir, LINES[:2 * BATCH])
    loaded = env.db("SELECT auc, accuracy FROM training_metrics WHERE model_version = 2")[0]
    columns = [c.lower() for c in result.columns]  # type: ignore[union-attr]
    assert np.allclose([tested[0][columns.index("auc")], tested[0][columns.index("accuracy")]],
                       loaded)


def test_a_crashed_batch_is_retried_with_the_range_it_was_planned_with(training: Any,
                                                                        tmp_path: Path) -> None:
    """Killed after train.py learnt 120 messages; 480 more arrive before the restart. The new
    engine reads [0, 120) again (batch_plans), not [0, 200): train.py sees the same input."""
    env, model_dir, engine = training
    marker = tmp_path / "fault-fired"
    engine.start({ENV_FAULT: "engine.after_transform", ENV_ONCE: str(marker)})
    env.produce(LINES[:120])
    env.sql("START PIPELINE training")
    assert engine.wait_dead() == -9 and marker.exists()
    env.produce(LINES[120:ROWS])
    engine.start()
    wait_loaded(env, ROWS, engine)
    engine.stop()
    assert committed_ranges(env)[0] == (0, 120)
    assert "replayed version 1 (input" in (model_dir / ".trainer.log").read_text()
    assert_learned_exactly_once(env, model_dir, LINES[:ROWS])


def test_two_partitions_one_chain_with_a_kill_before_commit(env_factory: Any,
                                                            tmp_path: Path) -> None:
    """Two batch partitions train one model directory in parallel: serialised into one chain,
    and after a kill before COMMIT each retried partition replays the version it produced."""
    env = env_factory(partitions=2)
    model_dir = tmp_path / "models"
    setup_training(env, model_dir)
    engine = EngineProcess(env, tmp_path / "engine.log")
    marker = tmp_path / "fault-fired"
    produced = {0: LINES[:300], 1: LINES[300:600]}
    try:
        for partition, values in produced.items():
            env.produce(values, partition=partition)
        engine.start({ENV_FAULT: "engine.before_commit", ENV_ONCE: str(marker)})
        env.sql("START PIPELINE training")
        assert engine.wait_dead() == -9 and marker.exists()
        engine.start()
        wait_for(lambda: env.cursors("training") == {0: 300, 1: 300}, timeout=180,
                 what="both cursors at 300")
        engine.stop()
    finally:
        engine.stop()
        stop_trainer(model_dir)
    assert "replayed version" in (model_dir / ".trainer.log").read_text()
    assert_learned_exactly_once(env, model_dir, produced)

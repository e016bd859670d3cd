"""``matchstream model``: rollback, pin and unpin on a real model directory (real train.py and
score.py) with their model_actions rows in the session's MariaDB; bad input changes nothing."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from matchstream.config import Config
from matchstream.db import connect
from matchstream.ddl.script import prepare_script
from matchstream.framing import encode_frames
from matchstream.ml import admin
from matchstream.ml.errors import ModelStoreError
from matchstream.ml.store import ModelStore
from matchstream.ml.trainer_link import stop_trainer

from ..conftest import REPO

pytestmark = pytest.mark.integration

TRAIN, SCORE = REPO / "transforms" / "train.py", REPO / "transforms" / "score.py"
SPEC = REPO / "data" / "features.json"
LINES = (REPO / "data" / "train.csv").read_bytes().splitlines()[1:]
SCORE_LINES = (REPO / "data" / "score.csv").read_bytes().splitlines()[1:20]


def train(model_dir: Path, start: int, rows: int = 200) -> str:
    """One batch; the estimator is the directory's (``models-dnn``: dnn, else linear)."""
    estimator = "dnn" if model_dir.name.endswith("-dnn") else "linear"
    done = subprocess.run([sys.executable, str(TRAIN), "--model-dir", str(model_dir), "--spec",
                           str(SPEC), "--keep", "4", "--model", estimator],
                          input=encode_frames(LINES[start:start + rows]), capture_output=True,
                          timeout=300, check=True)
    return done.stdout.decode()


def scored_version(model_dir: Path) -> int:
    done = subprocess.run([sys.executable, str(SCORE), "--model-dir", str(model_dir)],
                          input=encode_frames(SCORE_LINES), capture_output=True, timeout=60,
                          check=True)
    versions = {line.split("\t")[3] for line in done.stdout.decode().splitlines()}
    assert len(versions) == 1
    return int(versions.pop())


def tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): (b"<dir>" if p.is_dir() else p.read_bytes())
            for p in sorted(path.rglob("*")) if p.name != ".trainer.log"}


@pytest.fixture(params=["linear", "dnn"])
def setting(stack_config: Config, tmp_path: Path, cli_env: dict[str, str],
            request: pytest.FixtureRequest) -> Iterator[tuple[Path, str, dict[str, str]]]:
    database = f"model_{uuid.uuid4().hex[:8]}"
    conn = connect(stack_config)
    schema = REPO / "sql" / "00_schema.sql"
    (actions_table,) = [s.text for s in prepare_script(schema.read_text(), str(schema))
                        if "CREATE TABLE IF NOT EXISTS model_actions" in s.text]
    with conn.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{database}`")
        cursor.execute(f"USE `{database}`")
        cursor.execute(actions_table)
    model_dir = tmp_path / ("models-dnn" if request.param == "dnn" else "models")
    for start_row in (0, 200, 400):
        train(model_dir, start_row)
    try:
        yield model_dir, database, cli_env
    finally:
        stop_trainer(model_dir)
        with conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE `{database}`")
        conn.close()


def model(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "matchstream.cli", "model", *args],
                          capture_output=True, text=True, env=env, timeout=120)


def actions(config: Config, database: str) -> list[tuple[object, ...]]:
    conn = connect(config, database)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT action, model_version, source_version, live_before, note "
                           "FROM model_actions ORDER BY action_id")
            return [tuple(r) for r in cursor.fetchall()]
    finally:
        conn.close()


def test_rollback_pin_unpin(setting: tuple[Path, str, dict[str, str]],
                            stack_config: Config) -> None:
    model_dir, database, env = setting
    store = ModelStore(model_dir)
    common = ["--model-dir", str(model_dir), "-D", database]
    done = model(env, "rollback", "1", *common, "--note", "batch 2 was bad")
    assert done.returncode == 0, done.stderr
    assert store.latest_version() == 4
    lineage = store.lineage(4)
    assert lineage is not None and (lineage.kind, lineage.parent_version) == ("rollback", 1)
    v1, v4 = store.read_json(1, "model.json"), store.read_json(4, "model.json")
    assert {**v4, "version": 1} == v1 and v4["version"] == 4  # the weights of either format
    assert (model_dir / "versions" / "v000004" / "optimizer.npz").read_bytes() == (
        model_dir / "versions" / "v000001" / "optimizer.npz").read_bytes()
    assert scored_version(model_dir) == 4  # scoring follows at its next batch
    row = train(model_dir, 600)  # training continues from v1's weights and totals
    assert row.split("\t")[0] == "5" and row.split("\t")[18] == "4"
    assert store.read_json(5, "metadata.json")["rows_seen_total"] == 200 + 200

    assert model(env, "pin", "3", *common).returncode == 0
    train(model_dir, 800)
    assert (store.latest_version(), scored_version(model_dir)) == (6, 3)
    for start in (1000, 1200, 1400, 1600):  # keep 4: v3 would be pruned, but it is pinned
        train(model_dir, start)
    assert 3 in store.listed_versions() and scored_version(model_dir) == 3
    assert model(env, "unpin", *common).returncode == 0
    assert scored_version(model_dir) == 10
    assert actions(stack_config, database) == [
        ("rollback", 4, 1, 3, "batch 2 was bad"), ("pin", 3, None, 5, None),
        ("unpin", None, None, 3, None)]
    listing = model(env, "list", "--model-dir", str(model_dir)).stdout
    assert "v000010  learned" in listing and "[head, live]" in listing


def test_bad_requests_change_nothing(setting: tuple[Path, str, dict[str, str]],
                                     stack_config: Config) -> None:
    model_dir, database, env = setting
    common = ["--model-dir", str(model_dir), "-D", database]
    for start in (600, 800):  # keep 4: v1 is pruned
        train(model_dir, start)
    (model_dir / "versions" / "v000003" / "optimizer.npz").write_bytes(b"garbage")
    before = tree(model_dir)
    cases = {("rollback", "99"): "no version 99", ("rollback", "1"): "version 1 was pruned",
             ("pin", "3"): "version 3 is corrupt", ("show", "0"): "no version 0"}
    for args, message in cases.items():
        done = model(env, *args, *(common if args[0] != "show" else common[:2]))
        assert done.returncode == 2 and message in done.stderr, (args, done.stderr)
    # The database refuses the row: the rollback is undone.
    done = model(env, "rollback", "4", "--model-dir", str(model_dir), "-D", "no_such_db")
    assert done.returncode != 0
    assert tree(model_dir) == before
    assert actions(stack_config, database) == []


class FailingLog:
    """An action log whose commit fails after the row was written."""

    @contextlib.contextmanager
    def record(self, action: admin.Action) -> Iterator[None]:
        yield
        raise ModelStoreError("commit failed", path="model_actions")


def test_a_failed_commit_undoes_the_change(setting: tuple[Path, str, dict[str, str]]) -> None:
    model_dir, _, _ = setting
    store = ModelStore(model_dir)
    before = tree(model_dir)
    with pytest.raises(ModelStoreError, match="commit failed"):
        admin.rollback(store, 2, FailingLog())
    with pytest.raises(ModelStoreError, match="commit failed"):
        admin.pin(store, 2, FailingLog())
    assert tree(model_dir) == before

"""The warm trainer and exactly-once learning, on real train.py processes and real TensorFlow.

Each fault is injected at a named point (matchstream.faults), never by a timed kill, and each
test ends by checking what was lost and what was learnt twice: nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from matchstream.framing import encode_frames
from matchstream.ml.rows import METRICS_COLUMNS
from matchstream.ml.store import ModelStore
from matchstream.ml.trainer import LOCK_NAME
from matchstream.ml.trainer_link import stop_trainer, trainer_running

from ..conftest import trainer_pids_under
from .conftest import SPEC, TRAIN, data_lines

LINES = data_lines("train.csv")
BATCHES = [encode_frames(LINES[i:i + 300]) for i in range(0, 900, 300)]
# Columns that differ between two honest runs of the same batch: the wall clock.
CLOCK_COLUMNS = {"trained_at", "train_seconds"}


def train(model_dir: Path, stdin: bytes, mode: str = "warm", env: dict[str, str] | None = None,
          extra: str = "", estimator: str = "linear") -> subprocess.CompletedProcess[str]:
    args = [sys.executable, str(TRAIN), "--model-dir", str(model_dir), "--spec", str(SPEC),
            "--trainer", mode, "--model", estimator, *extra.split()]
    done = subprocess.run(args, input=stdin, capture_output=True, timeout=300,
                          env={**os.environ, **(env or {})})
    return subprocess.CompletedProcess(args, done.returncode, done.stdout.decode(),
                                       done.stderr.decode(errors="replace"))


def without_clock(row: str) -> dict[str, str]:
    values = dict(zip(METRICS_COLUMNS, row.rstrip("\n").split("\t"), strict=True))
    return {k: v for k, v in values.items() if k not in CLOCK_COLUMNS}


def tree(path: Path) -> dict[str, bytes]:
    """Every file below ``path`` with its bytes (and every directory, as b"<dir>")."""
    return {str(p.relative_to(path)): (b"<dir>" if p.is_dir() else p.read_bytes())
            for p in sorted(path.rglob("*"))}


def check_chain(model_dir: Path, rows: list[str]) -> None:
    """The invariants: one version per learnt batch, a parent chain, rows counted once."""
    store = ModelStore(model_dir)
    versions = store.listed_versions()
    assert versions == list(range(1, len(dict.fromkeys(
        line for text in rows for line in text.splitlines())) + 1))
    assert store.latest_version() == versions[-1]
    # A batch's text may hold several rows (a retry that replayed an older version first).
    singles = [line for text in rows for line in text.splitlines(keepends=True)]
    parsed = [dict(zip(METRICS_COLUMNS, r.rstrip("\n").split("\t"), strict=True))
              for r in dict.fromkeys(singles)]
    assert [p["model_version"] for p in parsed] == [str(v) for v in versions]
    assert [p["parent_version"] for p in parsed] == ["\\N", *(str(v) for v in versions[:-1])]
    metadata = store.read_json(versions[-1], "metadata.json")
    assert metadata["rows_seen_total"] == sum(int(p["rows"]) for p in parsed)
    for version, row in zip(versions, (p["model_version"] for p in parsed), strict=True):
        lineage = store.lineage(version)
        assert lineage is not None and lineage.metrics_row is not None
        assert lineage.metrics_row.splitlines()[-1].split("\t")[0] == row
    assert [store.lineage(v).metrics_row for v in versions] == rows  # type: ignore[union-attr]


@pytest.fixture
def model_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "models"
    yield path
    stop_trainer(path)


@pytest.mark.parametrize("estimator", ["linear", "dnn"])
def test_warm_and_cold_give_identical_versions_and_rows(estimator: str, tmp_path: Path,
                                                         model_dir: Path) -> None:
    cold_dir = tmp_path / "cold"
    warm_rows, cold_rows = [], []
    for stdin in BATCHES:
        warm = train(model_dir, stdin, "warm", estimator=estimator)
        cold = train(cold_dir, stdin, "cold", estimator=estimator)
        assert warm.returncode == cold.returncode == 0, warm.stderr + cold.stderr
        warm_rows.append(warm.stdout)
        cold_rows.append(cold.stdout)
    assert [without_clock(r) for r in warm_rows] == [without_clock(r) for r in cold_rows]
    assert trainer_running(model_dir)
    assert ModelStore(model_dir).read_json(3, "metadata.json")["estimator"] == estimator
    for version in (1, 2, 3):
        for name in ("model.json", "optimizer.npz"):
            warm_file = model_dir / "versions" / f"v{version:06d}" / name
            assert warm_file.read_bytes() == (cold_dir / warm_file.relative_to(model_dir)
                                              ).read_bytes(), warm_file
    check_chain(model_dir, warm_rows)


@pytest.mark.parametrize("estimator", ["linear", "dnn"])
def test_a_retried_batch_replays_its_row_and_the_model_does_not_move(estimator: str,
                                                                      model_dir: Path) -> None:
    rows = [train(model_dir, stdin, estimator=estimator).stdout for stdin in BATCHES[:2]]
    before = tree(model_dir / "versions")
    for stdin, row in zip(BATCHES[:2], rows, strict=True):  # both retried, in either order
        again = train(model_dir, stdin, estimator=estimator)
        assert again.returncode == 0 and again.stdout == row
        assert "already learned" in again.stderr
    assert tree(model_dir / "versions") == before
    check_chain(model_dir, rows)


@pytest.mark.parametrize("point", ["trainer.after_learn", "trainer.after_publish"])
def test_trainer_killed_mid_batch_loses_and_repeats_nothing(point: str, model_dir: Path,
                                                            tmp_path: Path) -> None:
    first = train(model_dir, BATCHES[0])
    assert first.returncode == 0
    stop_trainer(model_dir)  # the next train.py starts a trainer with the fault armed
    faulty = {"MATCHSTREAM_FAULT": point, "MATCHSTREAM_FAULT_ONCE": str(tmp_path / "fired")}
    second = train(model_dir, BATCHES[1], env=faulty)
    assert second.returncode == 0, second.stderr
    assert (tmp_path / "fired").exists(), "the fault point was never reached"
    assert "warm trainer lost mid-batch" in second.stderr
    if point == "trainer.after_publish":  # published before it died: replayed, not relearnt
        assert "already learned by version 2" in second.stderr
    third = train(model_dir, BATCHES[2])
    check_chain(model_dir, [first.stdout, second.stdout, third.stdout])
    assert list(model_dir.glob(".tmp-*")) == []


@pytest.mark.parametrize("point", ["store.after_files", "store.after_rename"])
def test_a_publish_cut_short_is_finished_or_undone(point: str, model_dir: Path,
                                                    tmp_path: Path) -> None:
    """In-process (cold) train.py killed inside the publish protocol; the engine then retries
    the batch. after_files: nothing was published, the retry learns it. after_rename: the
    version is published but LATEST lags; the retry moves LATEST on and replays the row."""
    first = train(model_dir, BATCHES[0], "cold")
    killed = train(model_dir, BATCHES[1], "cold", env={"MATCHSTREAM_FAULT": point})
    assert killed.returncode == -9 and killed.stdout == ""
    retry = train(model_dir, BATCHES[1], "cold")
    assert retry.returncode == 0, retry.stderr
    assert ("already learned" in retry.stderr) == (point == "store.after_rename")
    third = train(model_dir, BATCHES[2], "cold")
    check_chain(model_dir, [first.stdout, retry.stdout, third.stdout])
    assert list(model_dir.glob(".tmp-*")) == []


@pytest.mark.parametrize("estimator", ["linear", "dnn"])
def test_dry_run_leaves_the_directory_byte_identical(estimator: str, model_dir: Path) -> None:
    first = train(model_dir, BATCHES[0], estimator=estimator)
    before = tree(model_dir)
    for mode in ("warm", "cold"):
        dry = train(model_dir, BATCHES[1], mode, env={"MATCHSTREAM_DRY_RUN": "1"},
                    estimator=estimator)
        assert dry.returncode == 0, dry.stderr
        assert without_clock(dry.stdout)["model_version"] == "2"
        assert tree(model_dir) == before
    real = train(model_dir, BATCHES[1], estimator=estimator)
    assert without_clock(real.stdout) == without_clock(dry.stdout)  # what TEST showed is loaded
    check_chain(model_dir, [first.stdout, real.stdout])


def test_dry_run_on_a_directory_that_does_not_exist_creates_nothing(tmp_path: Path) -> None:
    dry = train(tmp_path / "models", BATCHES[0], extra="--dry-run")
    assert dry.returncode == 0 and without_clock(dry.stdout)["model_version"] == "1"
    assert not (tmp_path / "models").exists()


def test_one_trainer_per_directory_and_it_leaves_nothing_behind(model_dir: Path) -> None:
    assert train(model_dir, BATCHES[0], extra="--trainer-idle 3").returncode == 0
    pids = trainer_pids_under(model_dir.parent)
    assert len(pids) == 1
    # A second trainer on the same directory is fenced off at once.
    second = subprocess.run([sys.executable, "-m", "matchstream.ml.trainer", "--model-dir",
                             str(model_dir)], capture_output=True, text=True, timeout=60)
    assert second.returncode == 0 and "another trainer holds" in second.stderr
    assert trainer_pids_under(model_dir.parent) == pids
    # Idle for 3 s: it exits by itself; its socket goes with it, the lock is free again.
    deadline = time.monotonic() + 30
    while trainer_pids_under(model_dir.parent) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert trainer_pids_under(model_dir.parent) == {}
    assert not trainer_running(model_dir)
    assert sorted(p.name for p in model_dir.iterdir()) == [
        ".lock", LOCK_NAME, ".trainer.log", "LATEST", "versions"]
    log = (model_dir / ".trainer.log").read_text()
    assert "idle; exiting" in log and "another trainer holds" not in log


def test_concurrent_train_processes_share_one_trainer_and_one_chain(model_dir: Path) -> None:
    batches = [encode_frames(LINES[i:i + 100]) for i in range(0, 1200, 100)]
    procs = [subprocess.Popen([sys.executable, str(TRAIN), "--model-dir", str(model_dir),
                               "--spec", str(SPEC)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in batches]
    outs = [p.communicate(b, timeout=300) for p, b in zip(procs, batches, strict=True)]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    assert len(trainer_pids_under(model_dir.parent)) == 1
    rows = sorted((o.decode() for o, _ in outs), key=lambda r: int(r.split("\t")[0]))
    check_chain(model_dir, rows)


def test_bad_input_through_the_trainer_reads_as_train_py_s_own_error(model_dir: Path) -> None:
    assert train(model_dir, BATCHES[0]).returncode == 0
    bad = encode_frames([LINES[0], b"1,2,3"])
    warm, cold = train(model_dir, bad, "warm"), train(model_dir, bad, "cold")
    assert warm.returncode == cold.returncode == 1 and warm.stdout == cold.stdout == ""
    assert warm.stderr == cold.stderr and "message 1" in warm.stderr
    assert ModelStore(model_dir).listed_versions() == [1]


def test_lineage_json_names_parent_fingerprint_and_row(model_dir: Path) -> None:
    import hashlib

    rows = [train(model_dir, stdin).stdout for stdin in BATCHES[:2]]
    lineage = json.loads((model_dir / "versions" / "v000002" / "lineage.json").read_text())
    assert lineage["parent_version"] == 1 and lineage["kind"] == "learned"
    assert lineage["input_fingerprint"] == hashlib.sha256(BATCHES[1]).hexdigest()
    assert lineage["metrics_row"] == rows[1]
    assert without_clock(rows[1])["input_fingerprint"] == lineage["input_fingerprint"]


@pytest.mark.parametrize("mode", ["warm", "cold"])
def test_a_retry_that_reads_further_learns_only_the_new_messages(mode: str,
                                                                  model_dir: Path) -> None:
    """The first try saw 150 messages and published; the retry sees those 150 and 150 more (an
    engine that planned the range anew): the row of the first 150 again, then one new version
    for the other 150 only. A second retry of the longer range prints the same two rows."""
    first = train(model_dir, encode_frames(LINES[:150]), mode)
    longer = encode_frames(LINES[:300])
    retry = train(model_dir, longer, mode)
    assert retry.returncode == 0, retry.stderr
    lines = retry.stdout.splitlines(keepends=True)
    assert lines[0] == first.stdout and len(lines) == 2
    assert without_clock(lines[1])["rows"] == "150"
    assert "the first 150 messages were learned by version 1" in retry.stderr
    check_chain(model_dir, [first.stdout, retry.stdout])
    again = train(model_dir, longer, mode)
    assert again.stdout == retry.stdout
    assert ModelStore(model_dir).listed_versions() == [1, 2]

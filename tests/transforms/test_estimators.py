"""``train.py --model linear|dnn``: the option and its variable, one estimator per model
directory (a refusal changes nothing), and an MLP scored without NumPy for a small batch."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from matchstream.framing import encode_frames
from matchstream.ml import admin
from matchstream.ml.errors import EstimatorMismatch
from matchstream.ml.store import ModelStore
from matchstream.ml.train_protocol import TrainRequest
from matchstream.ml.trainer_link import stop_trainer
from matchstream.ml.training import Trainer
from matchstream.ml.transform import train_parser

from .conftest import REPO, SCORE, SPEC, TRAIN, run_transform


def tree(path: Path) -> dict[str, bytes]:
    """Every file below ``path`` with its bytes (and every directory, as b"<dir>")."""
    return {str(p.relative_to(path)): (b"<dir>" if p.is_dir() else p.read_bytes())
            for p in sorted(path.rglob("*"))}


@pytest.mark.parametrize(("given", "environ", "chosen"), [
    ([], {}, "linear"),
    ([], {"MATCHSTREAM_MODEL": "dnn"}, "dnn"),
    (["--model", "linear"], {"MATCHSTREAM_MODEL": "dnn"}, "linear"),
    (["--model", "dnn"], {}, "dnn"),
])
def test_the_argument_wins_over_the_variable_over_the_default(
        given: list[str], environ: dict[str, str], chosen: str) -> None:
    args = train_parser("train.py", environ).parse_args(
        ["--model-dir", "d", "--spec", "s", *given])
    assert args.model == chosen


def test_an_unknown_estimator_is_a_usage_error(tmp_path: Path, train_lines: list[bytes]) -> None:
    stdin = encode_frames(train_lines[:10])
    for extra, env in (("--model mlp", None), ("", {"MATCHSTREAM_MODEL": "mlp"})):
        proc = subprocess.run([sys.executable, str(TRAIN), "--model-dir", str(tmp_path / "m"),
                               "--spec", str(SPEC), *extra.split()], input=stdin,
                              capture_output=True, timeout=60, cwd=REPO,
                              env={**_environ(), **(env or {})})
        assert proc.returncode == 2 and proc.stdout == b"", proc.stderr
        assert b"--model" in proc.stderr and b"dnn" in proc.stderr
    assert not (tmp_path / "m").exists()


def _environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "MATCHSTREAM_MODEL"}


@pytest.mark.parametrize(("held", "asked"), [("linear", "dnn"), ("dnn", "linear")])
@pytest.mark.parametrize("how", ["warm", "cold", "variable"])
def test_a_directory_refuses_another_estimator_and_stays_as_it_was(
        held: str, asked: str, how: str, request: pytest.FixtureRequest,
        train_lines: list[bytes]) -> None:
    model_dir: Path = request.getfixturevalue("dnn_store_copy" if held == "dnn" else
                                              "store_copy")
    before = tree(model_dir)
    args = f"--model-dir {model_dir} --spec {SPEC}"
    args += {"warm": f" --model {asked}", "cold": f" --model {asked} --trainer cold",
             "variable": ""}[how]
    env = {"MATCHSTREAM_MODEL": asked} if how == "variable" else None
    proc = subprocess.run([sys.executable, str(TRAIN), *args.split()],
                          input=encode_frames(train_lines[1000:1100]), capture_output=True,
                          timeout=120, cwd=REPO, env={**_environ(), **(env or {})})
    stderr = proc.stderr.decode()
    assert (proc.returncode, proc.stdout) == (1, b""), stderr
    fmt = "matchstream.mlp/1" if held == "dnn" else "matchstream.linear/1"
    assert (f"train.py: error: model store {model_dir}: holds {held} model versions "
            f"(newest v000002, format {fmt}), not {asked}") in stderr
    assert "new model directory" in stderr
    assert tree(model_dir) == before  # no version, no trainer started, no log line


def test_the_trainer_itself_refuses_under_the_lock(store_copy: Path,
                                                   train_lines: list[bytes]) -> None:
    """The check that holds whatever the client did: inside Trainer.train, under the store lock,
    for real batches and dry runs alike (no TensorFlow is needed to refuse)."""
    before = tree(store_copy)
    for dry_run in (False, True):
        request = TrainRequest(encode_frames(train_lines[1000:1100]), str(store_copy),
                               str(SPEC), dry_run=dry_run, estimator="dnn")
        with pytest.raises(EstimatorMismatch, match="holds linear model versions"):
            Trainer().train(request)
    assert tree(store_copy) == before


class NoLog:
    """An action log that records nothing (the SQL side is tests/integration's)."""

    @contextlib.contextmanager
    def record(self, action: admin.Action) -> Iterator[None]:
        yield


def test_a_rollback_of_a_dnn_version_copies_every_file(dnn_store_copy: Path) -> None:
    store = ModelStore(dnn_store_copy)
    (store.version_dir(1) / "extra.bin").write_bytes(b"an estimator's own file")
    new = admin.rollback(store, 1, NoLog())
    copied = store.version_dir(new)
    assert sorted(p.name for p in copied.iterdir()) == sorted(
        p.name for p in store.version_dir(1).iterdir())
    assert (copied / "extra.bin").read_bytes() == b"an estimator's own file"
    assert (copied / "optimizer.npz").read_bytes() == (
        store.version_dir(1) / "optimizer.npz").read_bytes()
    v1, copy = store.read_json(1, "model.json"), store.read_json(new, "model.json")
    assert copy["format"] == "matchstream.mlp/1" and copy["version"] == new
    assert copy["layers"] == v1["layers"]


def test_an_mlp_small_batch_is_scored_without_numpy(trained_dnn_store: Path,
                                                   score_lines: list[bytes]) -> None:
    proc = subprocess.run([sys.executable, "-X", "importtime", str(SCORE), "--model-dir",
                           str(trained_dnn_store)], input=encode_frames(score_lines[:5]),
                          capture_output=True, timeout=60, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count(b"\n") == 5
    imported = {line.split("|")[-1].strip() for line in proc.stderr.decode().splitlines()
                if line.startswith("import time:")}
    assert not imported & {"numpy", "tensorflow", "pandas"}, sorted(imported)


def test_a_dnn_version_scores_with_score_py(trained_dnn_store: Path,
                                            score_lines: list[bytes]) -> None:
    result = run_transform(SCORE, f"--model-dir {trained_dnn_store}",
                           encode_frames(score_lines[:50]))
    assert result.code == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert len(rows) == 50 and {r[3] for r in rows} == {"2"}
    assert len({r[1] for r in rows}) > 10  # a learnt function, not a constant


@pytest.fixture(autouse=True)
def _no_trainer_left(tmp_path: Path) -> Iterator[None]:
    yield
    for path in tmp_path.iterdir():
        if path.is_dir():
            stop_trainer(path)

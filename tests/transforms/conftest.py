"""Shared fixtures for the transform tests: the data files as frames, a helper to run a
transform as the pipeline engine does (a subprocess, argv split on spaces), and one model store
per estimator trained once per session because every train.py process pays for importing
TensorFlow."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from matchstream.framing import encode_frames

REPO = Path(__file__).resolve().parents[2]
TRAIN = REPO / "transforms" / "train.py"
SCORE = REPO / "transforms" / "score.py"
REJECTS = REPO / "transforms" / "rejects.py"
OUTCOMES = REPO / "transforms" / "outcomes.py"
SPEC = REPO / "data" / "features.json"


def data_lines(name: str) -> list[bytes]:
    return (REPO / "data" / name).read_bytes().splitlines()[1:]


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


def run_transform(script: Path, args: str, stdin: bytes, timeout: float = 300) -> Result:
    proc = subprocess.run([sys.executable, str(script), *args.split(" ")], input=stdin,
                          capture_output=True, timeout=timeout, cwd=REPO)
    # surrogateescape: rejects.py prints messages byte for byte, valid UTF-8 or not; encode the
    # text the same way to get its bytes back.
    return Result(proc.returncode, proc.stdout.decode("utf-8", "surrogateescape"),
                  proc.stderr.decode("utf-8", "replace"))


def train_args(model_dir: Path, estimator: str = "linear") -> str:
    return f"--model-dir {model_dir} --spec {SPEC} --model {estimator}"


@pytest.fixture(scope="session")
def train_lines() -> list[bytes]:
    return data_lines("train.csv")


@pytest.fixture(scope="session")
def score_lines() -> list[bytes]:
    return data_lines("score.csv")


def train_store(model_dir: Path, lines: list[bytes], estimator: str) -> Path:
    """Two versions from two real train.py runs (500 rows each)."""
    for start in (0, 500):
        result = run_transform(TRAIN, train_args(model_dir, estimator),
                               encode_frames(lines[start:start + 500]))
        assert result.code == 0, result.stderr
    return model_dir


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory: pytest.TempPathFactory, train_lines: list[bytes]) -> Path:
    """A linear store with two versions. Read-only: tests that write get a copy from
    ``store_copy``."""
    return train_store(tmp_path_factory.mktemp("trained") / "models", train_lines, "linear")


@pytest.fixture(scope="session")
def trained_dnn_store(tmp_path_factory: pytest.TempPathFactory,
                      train_lines: list[bytes]) -> Path:
    """The same for ``--model dnn``; read-only too (``dnn_store_copy``)."""
    return train_store(tmp_path_factory.mktemp("trained-dnn") / "models", train_lines, "dnn")


@pytest.fixture
def store_copy(trained_store: Path, tmp_path: Path) -> Path:
    target = tmp_path / "models"
    shutil.copytree(trained_store, target)
    return target


@pytest.fixture
def dnn_store_copy(trained_dnn_store: Path, tmp_path: Path) -> Path:
    target = tmp_path / "dnn-models"
    shutil.copytree(trained_dnn_store, target)
    return target

"""Session-wide fixtures: one private stack (broker + MariaDB) on free ports for all integration
tests, started once and torn down at the end, so a developer's own stack is never touched."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from matchstream.config import Config
from matchstream.stack import Stack
from matchstream.stack.ports import free_port

REPO = Path(__file__).resolve().parent.parent


def private_config(state_dir: Path) -> Config:
    """A config on fresh free ports, ignoring any MATCHSTREAM_* of the developer's shell."""
    kafka_port = free_port()
    db_port = free_port()
    while db_port == kafka_port:  # the kernel may hand the same free port out twice
        db_port = free_port()
    return Config.from_env(environ={}, state_dir=state_dir, kafka_port=kafka_port, db_port=db_port)


@pytest.fixture(scope="session")
def stack_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Config]:
    """The config of the session's private stack, already up; the engine is not started (tests
    that need it start their own)."""
    config = private_config(tmp_path_factory.mktemp("stack") / "state")
    stack = Stack(config, with_engine=False)
    try:
        stack.up()
        yield config
    finally:
        stack.down()


@pytest.fixture(scope="session")
def stack(stack_config: Config) -> Config:
    """Alias kept for readability in tests: ``def test_x(stack): ... stack.kafka_bootstrap``."""
    return stack_config


@pytest.fixture
def cli_env(stack_config: Config) -> dict[str, str]:
    """Environment for running the ``matchstream`` command against the session's stack."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATCHSTREAM_")}
    env.update(
        MATCHSTREAM_STATE_DIR=str(stack_config.state_dir),
        MATCHSTREAM_KAFKA_PORT=str(stack_config.kafka_port),
        MATCHSTREAM_DB_PORT=str(stack_config.db_port),
    )
    return env


# Warm trainers (matchstream.ml.trainer) started by train.py in a test live in their own session
# and would outlive the test: they get a short idle exit, and the session stops every one still
# serving a directory under its temporary root, so no TensorFlow process outlives the run.
TEST_TRAINER_IDLE_SECONDS = "20"


@pytest.fixture(scope="session", autouse=True)
def _warm_trainers_end_with_the_session(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    os.environ.setdefault("MATCHSTREAM_TRAINER_IDLE_SECONDS", TEST_TRAINER_IDLE_SECONDS)
    root = tmp_path_factory.getbasetemp()
    yield
    stop_trainers_under(root)
    leaked = engine_pids_under(root)
    for pid in leaked:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not leaked, f"pipeline engines outlived their tests (killed now): {leaked}"


def engine_pids_under(root: Path) -> dict[int, Path]:
    """``pid -> state dir`` of every pipeline engine whose state directory lies below ``root``:
    a test that starts one (through `matchstream up` or a Stack) must stop it."""
    found: dict[int, Path] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if b"matchstream.engine" not in argv:
                continue
            environ = dict(
                item.split(b"=", 1) for item in (proc / "environ").read_bytes().split(b"\0")
                if b"=" in item
            )
        except OSError:
            continue
        state = environ.get(b"MATCHSTREAM_STATE_DIR")
        if state and root in Path(os.fsdecode(state)).parents:
            found[int(proc.name)] = Path(os.fsdecode(state))
    return found


def trainer_pids_under(root: Path) -> dict[int, Path]:
    """``pid -> model dir`` of every warm trainer serving a directory below ``root``."""
    found: dict[int, Path] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"matchstream.ml.trainer" not in argv or b"--model-dir" not in argv:
            continue
        model_dir = Path(os.fsdecode(argv[argv.index(b"--model-dir") + 1]))
        if root in model_dir.parents:
            found[int(proc.name)] = model_dir
    return found


def stop_trainers_under(root: Path) -> None:
    from matchstream.ml.trainer_link import stop_trainer

    for pid, model_dir in trainer_pids_under(root).items():
        stop_trainer(model_dir, timeout=5)
        if Path(f"/proc/{pid}").exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

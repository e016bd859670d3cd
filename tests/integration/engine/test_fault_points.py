"""Exactly once, proven deterministically: the engine process is SIGKILLed at each fault point of
the batch protocol (matchstream.faults), on the transform path and on the chunked path without a
transform, then a new engine finishes the work. Every case checks that the kill landed inside
the batch (nothing of it committed, cursor unmoved) and that afterwards every row is in the
table exactly once. The table has no unique key, so a duplicate would show.

Also here: the other faults a batch meets (a full disk, an ``error`` at a point), each followed
by recovery and the same counts.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from matchstream.config import ENV_PREFIX, Config
from matchstream.engine import catalog
from matchstream.engine.engine import Engine
from matchstream.engine.settings import EngineSettings
from matchstream.faults import ENV_FAULT, ENV_ONCE

from .conftest import IDENTITY, EngineHandle, Env, wait_for

pytestmark = [pytest.mark.integration]

ROWS = 60
# Without a transform the range is read and loaded in chunks of this many messages: 60 rows are
# three chunks, three LOAD DATA statements in the batch's one transaction.
CHUNK_MESSAGES = 25


# (path, fault point): every point of batch.py's protocol on the path that reaches it. `#N` is
# the point's N-th hit in the engine process: the chunked cases die after one, two or three
# LOAD DATA statements of the same transaction.
CASES = [
    ("transform", "engine.after_transform"),
    ("transform", "engine.before_load"),
    ("transform", "engine.after_load"),
    ("transform", "engine.after_guard"),
    ("transform", "engine.before_commit"),
    ("chunked", "engine.before_load#2"),
    ("chunked", "engine.after_load#1"),
    ("chunked", "engine.after_load#3"),
    ("chunked", "engine.after_guard"),
    ("chunked", "engine.before_commit"),
]


class EngineProcess:
    """``python -m matchstream.engine`` on the session's stack, with small chunks."""

    def __init__(self, env: Env, log: Path) -> None:
        self.env, self.log = env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, extra: dict[str, str] | None = None, *, lock_wait_s: float = 10.0) -> None:
        child = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
        child.update(self.env.config.with_(transform_timeout_s=30.0).to_env())
        child.update(extra or {})
        code = ("import sys, matchstream.engine.settings as s\n"
                f"s.DEFAULT_CHUNK_MESSAGES = {CHUNK_MESSAGES}\n"
                f"s.DEFAULT_LOCK_WAIT_S = {lock_wait_s}\n"
                "from matchstream.engine.__main__ import main\n"
                "sys.exit(main())\n")
        with self.log.open("ab") as sink:
            self.proc = subprocess.Popen([sys.executable, "-c", code], env=child,
                                         stdout=sink, stderr=sink)

    def wait_dead(self, timeout: float = 60) -> int:
        assert self.proc is not None
        code = self.proc.wait(timeout=timeout)
        self.proc = None
        return code

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture
def engine_process(env: Env, tmp_path: Path) -> Iterator[EngineProcess]:
    process = EngineProcess(env, tmp_path / "engine.log")
    try:
        yield process
    finally:
        process.stop()


def _pipeline(env: Env, path: str) -> None:
    env.db("CREATE TABLE seen (id INT NOT NULL, payload VARCHAR(40), KEY (id))")
    transform = ""
    if path == "transform":
        env.transform("ident.py", IDENTITY)
        transform = f"WITH TRANSFORM ('file://{env.sql_dir}/ident.py', '', '') "
    env.sql(f"CREATE PIPELINE p AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' BATCH_INTERVAL 50 "
            f"MAX_OFFSETS_PER_BATCH_PARTITION 1000 {transform}INTO TABLE seen")


def _rows(start: int, stop: int) -> list[bytes]:
    return [f"{i}\tpayload-{i}".encode() for i in range(start, stop)]


def _exactly_once(env: Env, rows: int) -> None:
    count, distinct, low, high = env.db(
        "SELECT COUNT(*), COUNT(DISTINCT id), MIN(id), MAX(id) FROM seen")[0]
    assert (count, distinct, low, high) == (rows, rows, 0, rows - 1), \
        f"lost or duplicated: {count} rows, {distinct} distinct ids in {low}..{high}"


@pytest.mark.parametrize(("path", "point"), CASES, ids=[f"{p}-{q}" for p, q in CASES])
def test_sigkill_at_a_fault_point_loses_and_duplicates_nothing(
    env: Env, engine_process: EngineProcess, tmp_path: Path, path: str, point: str,
) -> None:
    _pipeline(env, path)
    env.produce(_rows(0, ROWS))
    env.sql("START PIPELINE p")
    marker = tmp_path / "fired"
    engine_process.start({ENV_FAULT: f"{point}:kill", ENV_ONCE: str(marker)})
    assert engine_process.wait_dead() == -9, "the engine was not killed at the fault point"
    assert marker.exists()
    # The kill landed inside the batch: nothing of it committed, the cursor did not move.
    assert env.count("seen") == 0
    assert env.cursors("p").get(0, 0) == 0
    engine_process.start()
    try:
        wait_for(lambda: env.cursors("p").get(0) == ROWS, what="the restarted engine's batch")
        env.produce(_rows(ROWS, 2 * ROWS))  # and the engine goes on after its recovery
        wait_for(lambda: env.cursors("p").get(0) == 2 * ROWS, what="the next batch")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; engine log:\n{(tmp_path / 'engine.log').read_text()[-4000:]}"
                             ) from None
    engine_process.stop()
    _exactly_once(env, 2 * ROWS)
    assert env.state("p") == "Running"
    # A killed engine cannot record anything, and nothing else failed.
    assert [e for e in env.errors("p") if e["ERROR_TYPE"] == "Error"] == []


# Two partitions in one batch (one transaction): killed after some of the LOAD DATA statements of
# both partitions, after the guard locked both cursors, or with both cursors written.
TWO_PARTITION_CASES = [
    ("transform", "engine.after_load#1"),
    ("transform", "engine.after_load#2"),
    ("transform", "engine.before_commit"),
    ("chunked", "engine.after_load#3"),
    ("chunked", "engine.after_guard"),
    ("chunked", "engine.before_commit"),
]


@pytest.mark.parametrize(("path", "point"), TWO_PARTITION_CASES,
                         ids=[f"{p}-{q}" for p, q in TWO_PARTITION_CASES])
def test_sigkill_in_a_two_partition_batch_commits_neither_partition(
    env_factory, tmp_path: Path, path: str, point: str,  # noqa: ANN001 - the conftest factory
) -> None:
    """The batch is the unit: a kill anywhere in it leaves both partitions' rows and cursors
    untouched, and the new engine loads every row of both exactly once."""
    env = env_factory(partitions=2)
    _pipeline(env, path)
    half = ROWS // 2  # partition 0 gets ids 0..29, partition 1 ids 30..59 (two chunks each)
    env.produce(_rows(0, half), partition=0)
    env.produce(_rows(half, ROWS), partition=1)
    env.sql("START PIPELINE p")
    engine_process = EngineProcess(env, tmp_path / "engine.log")
    marker = tmp_path / "fired"
    try:
        engine_process.start({ENV_FAULT: f"{point}:kill", ENV_ONCE: str(marker)})
        assert engine_process.wait_dead() == -9, "the engine was not killed at the fault point"
        assert marker.exists()
        assert env.count("seen") == 0
        assert env.cursors("p") in ({}, {0: 0}, {1: 0}, {0: 0, 1: 0})
        engine_process.start()
        wait_for(lambda: env.cursors("p") == {0: half, 1: ROWS - half},
                 what="the restarted engine's batch")
        env.produce(_rows(ROWS, ROWS + half), partition=0)
        env.produce(_rows(ROWS + half, 2 * ROWS), partition=1)
        wait_for(lambda: env.cursors("p") == {0: 2 * half, 1: 2 * (ROWS - half)},
                 what="the next batch")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; engine log:\n{(tmp_path / 'engine.log').read_text()[-4000:]}"
                             ) from None
    finally:
        engine_process.stop()
    _exactly_once(env, 2 * ROWS)
    assert env.state("p") == "Running"
    assert [e for e in env.errors("p") if e["ERROR_TYPE"] == "Error"] == []
    # The redone batch held both partitions, committed together.
    per_batch = env.db("SELECT BATCH_ID, COUNT(DISTINCT BATCH_SOURCE_PARTITION_ID) FROM "
                       "matchstream_catalog.PIPELINES_BATCHES WHERE DATABASE_NAME = %s AND "
                       "BATCH_PARTITION_STATE = 'Succeeded' GROUP BY BATCH_ID ORDER BY BATCH_ID",
                       [env.database])
    assert per_batch and int(per_batch[0][1]) == 2, per_batch


@pytest.mark.parametrize("path", ["transform", "chunked"])
def test_an_error_at_the_commit_is_one_failed_attempt_then_the_batch_loads_once(
    env: Env, engine_process: EngineProcess, tmp_path: Path, path: str,
) -> None:
    """An exception (not a kill) just before COMMIT: the batch rolls back, leaves one error row
    naming the fault, and the retry loads it exactly once."""
    _pipeline(env, path)
    env.produce(_rows(0, ROWS))
    env.sql("START PIPELINE p")
    engine_process.start({ENV_FAULT: "engine.before_commit:error",
                          ENV_ONCE: str(tmp_path / "fired")})
    wait_for(lambda: env.cursors("p").get(0) == ROWS, what="the retried batch")
    engine_process.stop()
    _exactly_once(env, ROWS)
    errors = [e for e in env.errors("p") if e["ERROR_TYPE"] == "Error"]
    assert len(errors) == 1
    assert "fault injected at engine.before_commit" in errors[0]["ERROR_MESSAGE"]
    assert errors[0]["BATCH_EARLIEST_OFFSET"] == 0
    assert env.state("p") == "Running"


@pytest.mark.parametrize("path", ["transform", "chunked"])
def test_a_full_disk_backs_off_without_an_attempt_and_loses_nothing(
    env: Env, engine: EngineHandle, monkeypatch: pytest.MonkeyPatch, path: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """ENOSPC on every work file for a while, with MAX_RETRIES_PER_BATCH_PARTITION 1 and
    STOP_ON_ERROR OFF: no attempt is counted (nothing is skipped, no Error), the streak leaves a
    Warning row, and once there is room again every row loads once."""
    caplog.set_level(logging.WARNING, logger="matchstream.engine")
    env.db("CREATE TABLE seen (id INT NOT NULL, payload VARCHAR(40), KEY (id))")
    transform = ""
    if path == "transform":
        env.transform("ident.py", IDENTITY)
        transform = f"WITH TRANSFORM ('file://{env.sql_dir}/ident.py', '', '') "
    monkeypatch.setenv(ENV_FAULT, "engine.before_load:enospc")
    env.sql(f"CREATE PIPELINE p AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' BATCH_INTERVAL 50 "
            f"MAX_RETRIES_PER_BATCH_PARTITION 1 {transform}STOP_ON_ERROR OFF INTO TABLE seen")
    env.produce(_rows(0, ROWS))
    env.sql("START PIPELINE p")
    warnings = wait_for(lambda: [e for e in env.errors("p") if e["ERROR_TYPE"] == "Warning"],
                        what="the full disk's warning row")
    assert "No space left on device" in warnings[0]["ERROR_MESSAGE"]
    # Three failures in a row, none an attempt: with one allowed attempt, the first would have
    # skipped the range had it counted.
    wait_for(lambda: caplog.text.count("not counted as an attempt") >= 3,
             what="three backed-off retries")
    assert env.count("seen") == 0 and env.cursors("p").get(0, 0) == 0
    assert env.state("p") == "Running"
    monkeypatch.delenv(ENV_FAULT)
    wait_for(lambda: env.cursors("p").get(0) == ROWS, what="the batch once there is room")
    _exactly_once(env, ROWS)
    assert [e for e in env.errors("p") if e["ERROR_TYPE"] == "Error"] == []
    skipped = env.db("SELECT SKIPPED_BATCH_PARTITIONS FROM matchstream_catalog.pipeline_registry "
                     "WHERE DATABASE_NAME = %s", [env.database])
    assert skipped == [(0,)]


def _owner_pid(env: Env) -> int | None:
    rows = env.db("SELECT PID FROM matchstream_catalog.engine_owner WHERE CONNECTION_ID = "
                  "IS_USED_LOCK(%s)", [catalog.ENGINE_LOCK])
    return int(rows[0][0]) if rows else None


def test_a_second_engine_is_refused_naming_the_first_and_a_killed_one_lets_go(
    env: Env, tmp_path: Path,
) -> None:
    """One engine per catalog: a second one gives up after its lock wait, naming the pid that
    holds the catalog, and runs no batch meanwhile; once the first is SIGKILLed, MariaDB drops
    its session and its lock, and a new engine takes over and loads the rest exactly once."""
    _pipeline(env, "transform")
    env.produce(_rows(0, ROWS))
    env.sql("START PIPELINE p")
    first, second = EngineProcess(env, tmp_path / "a.log"), EngineProcess(env, tmp_path / "b.log")
    try:
        first.start()
        wait_for(lambda: env.cursors("p").get(0) == ROWS, what="the first engine's batch")
        assert first.proc is not None
        first_pid = first.proc.pid
        assert _owner_pid(env) == first_pid
        second.start(lock_wait_s=1.0)
        assert second.wait_dead(timeout=30) == 1
        refusal = (tmp_path / "b.log").read_text()
        assert "another engine holds the catalog matchstream_catalog" in refusal
        assert f"pid {first_pid} on " in refusal
        first.proc.kill()
        assert first.wait_dead() == -9
        env.produce(_rows(ROWS, 2 * ROWS))
        second.start()
        wait_for(lambda: env.cursors("p").get(0) == 2 * ROWS, what="the new engine's batch")
        assert second.proc is not None and _owner_pid(env) == second.proc.pid
    finally:
        first.stop()
        second.stop()
    _exactly_once(env, 2 * ROWS)


@pytest.fixture
def capped_engine(stack_config: Config, tmp_path: Path) -> Iterator[Path]:
    """An in-thread engine whose transforms may write 2 MiB and run 3 s; yields its work dir."""
    work = tmp_path / "work"
    settings = EngineSettings.from_config(
        stack_config, work_dir=work, unpack_dir=tmp_path / "unpack", transform_timeout_s=3.0,
        retry_delay_s=0.05, poll_s=0.1, transform_output_max_bytes=2 * 1024 * 1024)
    stop = threading.Event()
    thread = threading.Thread(target=Engine(stack_config, settings).run, args=(stop,),
                              daemon=True)
    thread.start()
    yield work
    stop.set()
    thread.join(timeout=30)
    assert not thread.is_alive()


ENDLESS = ("import sys\n"
           "sys.stdin.buffer.read()\n"
           "while True:\n"
           "    sys.stdout.buffer.write(b'1\\tx\\n' * 65536)\n")
HANGS = "import sys, time\nsys.stdin.buffer.read()\ntime.sleep(3600)\n"
NEVER_READS = "import sys\nsys.stdout.write('1\\tx\\n')\n"


@pytest.mark.parametrize(("body", "reason"), [
    (ENDLESS, "transform output exceeded 2097152 bytes (transform_output_max_bytes)"),
    (HANGS, "transform did not finish within 3 s and was killed"),
    (NEVER_READS, "transform exited without reading all of its input"),
], ids=["writes-without-end", "hangs", "never-reads-its-input"])
def test_a_runaway_transform_fails_its_batch_and_leaves_nothing(
    env: Env, capped_engine: Path, body: str, reason: str,
) -> None:
    """Each is the data's failure: one error row per attempt with the reason, then Error
    (STOP_ON_ERROR ON); nothing loaded, the cursor unmoved, no work file left, no process."""
    env.db("CREATE TABLE seen (id INT NOT NULL, payload VARCHAR(40), KEY (id))")
    env.transform("runaway.py", body)
    env.sql(f"CREATE PIPELINE p AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' BATCH_INTERVAL 50 "
            "MAX_RETRIES_PER_BATCH_PARTITION 2 "
            f"WITH TRANSFORM ('file://{env.sql_dir}/runaway.py', '', '') "
            "INTO TABLE seen")
    env.produce(_rows(0, ROWS))
    env.sql("START PIPELINE p")
    wait_for(lambda: env.state("p") == "Error", what="the pipeline in Error")
    errors = [e for e in env.errors("p") if e["ERROR_TYPE"] == "Error"]
    assert len(errors) == 2 and all(reason in e["ERROR_MESSAGE"] for e in errors), errors
    assert env.count("seen") == 0 and env.cursors("p").get(0, 0) == 0
    wait_for(lambda: not list(capped_engine.iterdir()), timeout=10, what="no work file")
    running = subprocess.run(["pgrep", "-f", str(env.sql_dir / "runaway.py")],
                             capture_output=True, text=True)
    assert running.stdout == "", "the transform outlived its batch"


def test_a_pipeline_name_that_reads_as_a_path_never_reaches_one(
    env: Env, engine: EngineHandle, tmp_path: Path,
) -> None:
    """``x/../y`` is a valid quoted name: its archive transform is unpacked in a directory of
    the engine's unpack dir named from it without the slashes, its work files likewise, and
    its rows load; nothing is written outside those directories."""
    import tarfile

    env.db("CREATE TABLE seen (id INT NOT NULL, payload VARCHAR(40), KEY (id))")
    script = env.transform("ident.py", IDENTITY)
    archive = env.sql_dir / "bundle.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(script, arcname="ident.py")
    env.sql(f"CREATE PIPELINE `x/../y` AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' "
            "BATCH_INTERVAL 50 "
            f"WITH TRANSFORM ('file://{env.sql_dir}/bundle.tar.gz', 'ident.py', '') "
            "INTO TABLE seen")
    env.produce(_rows(0, ROWS))
    env.sql("START PIPELINE `x/../y`")
    wait_for(lambda: env.cursors("x/../y").get(0) == ROWS, what="the rows of `x/../y`")
    _exactly_once(env, ROWS)
    # The engine copies the transforms of every running pipeline of the session's stack (the
    # demo's too, when its test ran first): this test's database has the one directory.
    unpacked = [p.name for p in (tmp_path / "unpack").iterdir()
                if p.name.startswith(f"{env.database}.")]
    assert len(unpacked) == 1 and unpacked[0].startswith(f"{env.database}.x_.._y-"), unpacked
    assert not (tmp_path / "y").exists() and not (tmp_path.parent / "y").exists()

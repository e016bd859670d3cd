"""Staying up: lost database connections, failed extraction rounds, a bounded batch history."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pymysql
import pytest

from matchstream.config import Config
from matchstream.engine import catalog
from matchstream.engine.engine import Engine
from matchstream.engine.extractor import Extractor, KafkaStalled, KafkaUnreachable
from matchstream.engine.settings import DEFAULT_RETRY_DELAY_S, EngineSettings
from matchstream.engine.statements import Message

from .conftest import EngineHandle, Env, wait_for

pytestmark = pytest.mark.integration

CAT = catalog.CATALOG_SCHEMA


def _pipeline(env: Env, extra: str = "") -> None:
    env.db("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))")
    env.sql(f"CREATE PIPELINE p AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' BATCH_INTERVAL 50 "
            f"{extra} INTO TABLE t")


def _rows(start: int, stop: int) -> list[bytes]:
    return [f"{i}\tn{i}".encode() for i in range(start, stop)]


def test_engine_and_runner_survive_killed_database_sessions(
    env: Env, engine: EngineHandle, caplog: pytest.LogCaptureFixture
) -> None:
    """KILL every engine session (as a MariaDB restart does): the engine logs, reconnects and
    the pipeline goes on loading, exactly once; START/STOP still reach it."""
    caplog.set_level(logging.WARNING, logger="matchstream.engine")
    _pipeline(env)
    env.sql("START PIPELINE p")
    env.produce(_rows(0, 10))
    wait_for(lambda: env.count("t") == 10, what="rows before the kill")
    own = env.db("SELECT CONNECTION_ID()")[0][0]
    sessions = [r[0] for r in env.db(
        "SELECT ID FROM information_schema.PROCESSLIST WHERE ID <> %s AND USER = %s",
        [own, env.config.db_user])]
    assert sessions, "the engine holds no session?"
    for session in sessions:
        try:
            env.db("KILL CONNECTION %s", [session])
        except pymysql.MySQLError:
            pass  # ended meanwhile
    env.produce(_rows(10, 20))
    wait_for(lambda: env.count("t") == 20, what="rows after the sessions were killed")
    assert engine.thread.is_alive()
    assert "catalog connection failed" in caplog.text
    assert env.cursors("p") == {0: 20}
    env.sql("STOP PIPELINE p")
    env.produce(_rows(20, 25))
    time.sleep(1.0)
    assert env.count("t") == 20


def test_failed_extraction_round_is_no_batch_and_backs_off(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two stalled reads then a good one: LIMIT 1 BATCHES still loads the data (failed rounds
    do not use up the limit); a stalled broker is the infrastructure's failure, so the waits
    double (retry delay, then twice it) and the streak leaves one Warning row, no Error."""
    _pipeline(env)
    env.produce(_rows(0, 5))
    calls: list[float] = []
    # Without a transform the runner reads through read_chunks (batch.ChunkFeed).
    real_read = Extractor.read_chunks

    def flaky_read(self: Extractor, *args: Any, **kwargs: Any) -> Any:
        calls.append(time.monotonic())
        if len(calls) <= 2:
            raise KafkaStalled("simulated broker failure")
        return real_read(self, *args, **kwargs)

    monkeypatch.setattr(Extractor, "read_chunks", flaky_read)
    result = env.sql("START PIPELINE p FOREGROUND LIMIT 1 BATCHES")
    assert isinstance(result, Message) and result.rowcount == 5
    assert env.count("t") == 5
    assert len(calls) == 3
    assert calls[1] - calls[0] >= DEFAULT_RETRY_DELAY_S * 0.9
    assert calls[2] - calls[1] >= 2 * DEFAULT_RETRY_DELAY_S * 0.9
    errors = env.errors("p")
    assert [(e["ERROR_TYPE"], e["ERROR_KIND"]) for e in errors] == [("Warning", "Extract")]
    assert "simulated broker failure" in errors[0]["ERROR_MESSAGE"]


def test_a_long_broker_outage_never_errors_or_skips(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight failed reads in a row with MAX_RETRIES_PER_BATCH_PARTITION 2 and STOP_ON_ERROR OFF:
    none is an attempt, so nothing is skipped and the pipeline does not go to Error; the rows
    load once the broker answers."""
    monkeypatch.setattr("matchstream.engine.settings.DEFAULT_MAX_BACKOFF_S", 0.2)
    _pipeline(env, "MAX_RETRIES_PER_BATCH_PARTITION 2 STOP_ON_ERROR OFF")
    env.produce(_rows(0, 5))
    calls: list[float] = []
    real_read = Extractor.read_chunks

    def flaky_read(self: Extractor, *args: Any, **kwargs: Any) -> Any:
        calls.append(time.monotonic())
        if len(calls) <= 8:
            raise KafkaUnreachable("simulated broker outage")
        return real_read(self, *args, **kwargs)

    monkeypatch.setattr(Extractor, "read_chunks", flaky_read)
    result = env.sql("START PIPELINE p FOREGROUND LIMIT 1 BATCHES")
    assert isinstance(result, Message) and result.rowcount == 5
    assert len(calls) == 9
    assert env.count("t") == 5
    assert env.cursors("p") == {0: 5}
    skipped = env.db(f"SELECT SKIPPED_BATCH_PARTITIONS FROM `{catalog.CATALOG_SCHEMA}`."
                     "pipeline_registry WHERE DATABASE_NAME = %s", [env.database])
    assert skipped == [(0,)]
    assert [e["ERROR_TYPE"] for e in env.errors("p")] == ["Warning"]


def test_batch_history_stays_bounded(env: Env, stack_config: Config, tmp_path: Path) -> None:
    """One message per batch, 30 batches, keep 4 trimmed every 3: PIPELINES_BATCHES never holds
    more than 7 batches of the pipeline and always the newest."""
    _pipeline(env, "MAX_OFFSETS_PER_BATCH_PARTITION 1")
    env.produce(_rows(0, 30))
    settings = EngineSettings.from_config(
        stack_config, work_dir=tmp_path / "work", unpack_dir=tmp_path / "unpack",
        retry_delay_s=0.05, poll_s=0.1, batches_to_keep=4, trim_every_batches=3)
    stop = threading.Event()
    thread = threading.Thread(target=Engine(stack_config, settings).run, args=(stop,),
                              daemon=True)
    seen: list[int] = []

    def batches() -> tuple[int, int]:
        count, newest = env.db(
            f"SELECT COUNT(DISTINCT BATCH_ID), MAX(BATCH_ID) FROM `{CAT}`.PIPELINES_BATCHES "
            "WHERE DATABASE_NAME = %s AND PIPELINE_NAME = 'p'", [env.database])[0]
        seen.append(int(count or 0))
        return int(count or 0), int(newest or 0)

    env.sql("START PIPELINE p")
    thread.start()
    try:
        wait_for(lambda: env.count("t") == 30 and batches()[0] <= 4 + 3, what="30 rows")
    finally:
        stop.set()
        thread.join(timeout=30)
    count, newest = batches()
    assert max(seen) <= 4 + 3 and count <= 4 + 3
    assert newest >= 30  # the newest batches are the ones kept

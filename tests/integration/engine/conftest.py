"""Factories for engine tests against the session's real broker and MariaDB.

Each test gets its own database and its own topic, so tests never see each other's pipelines.
"""

from __future__ import annotations

import stat
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from matchstream.config import Config
from matchstream.ddl import parse_statement
from matchstream.engine import catalog
from matchstream.engine.engine import Engine
from matchstream.engine.settings import EngineSettings
from matchstream.engine.statements import Message, ResultSet, execute

pytestmark = pytest.mark.integration

# A transform that changes nothing: framed stdin -> one line per message.
IDENTITY = (
    "import struct, sys\n"
    "inp, out = sys.stdin.buffer, sys.stdout.buffer\n"
    "while True:\n"
    "    hdr = inp.read(8)\n"
    "    if not hdr:\n"
    "        break\n"
    "    (n,) = struct.unpack('<Q', hdr)\n"
    "    out.write(inp.read(n) + b'\\n')\n"
)

# Every polling loop in these tests gives up after this long: a broken engine fails the test
# instead of hanging CI.
DEADLINE_S = 60.0


def wait_for(predicate: Callable[[], Any], *, timeout: float = DEADLINE_S, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or predicate}")
        time.sleep(0.05)


@dataclass
class Env:
    """One test's database, topic, SQL session and helpers."""

    config: Config
    database: str
    topic: str
    conn: Any
    sql_dir: Path
    producer: KafkaProducer

    @property
    def kafka(self) -> str:
        return self.config.kafka_bootstrap

    def sql(self, text: str) -> ResultSet | Message:
        stmt = parse_statement(text)
        return execute(stmt, conn=self.conn, config=self.config, sql_dir=self.sql_dir)

    def db(self, text: str, params: Any = None) -> list[tuple[Any, ...]]:
        self.conn.commit()
        with self.conn.cursor() as cursor:
            cursor.execute(text, params)
            rows = list(cursor.fetchall())
        self.conn.commit()
        return rows

    def produce(self, values: list[bytes], partition: int = 0) -> None:
        for value in values:
            self.producer.send(self.topic, value=value, partition=partition)
        self.producer.flush()

    def transform(self, name: str, body: str) -> Path:
        """A Python transform file (executable, shebang = this interpreter) in sql_dir."""
        path = self.sql_dir / name
        path.write_text(f"#!{sys.executable}\n{body}")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        return path

    def cursors(self, pipeline: str) -> dict[int, int]:
        rows = self.db(
            f"SELECT SOURCE_PARTITION_ID, CURSOR_OFFSET FROM `{catalog.CATALOG_SCHEMA}`."
            "PIPELINES_CURSORS WHERE DATABASE_NAME = %s AND PIPELINE_NAME = %s",
            [self.database, pipeline])
        return {int(p): int(c) for p, c in rows}

    def errors(self, pipeline: str) -> list[dict[str, Any]]:
        self.conn.commit()
        with self.conn.cursor() as cursor:
            cursor.execute(
                f"SELECT * FROM `{catalog.CATALOG_SCHEMA}`.PIPELINES_ERRORS "
                "WHERE DATABASE_NAME = %s AND PIPELINE_NAME = %s ORDER BY ERROR_ID",
                [self.database, pipeline])
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def state(self, pipeline: str) -> str:
        rows = self.db(
            f"SELECT STATE FROM `{catalog.CATALOG_SCHEMA}`.pipeline_registry "
            "WHERE DATABASE_NAME = %s AND PIPELINE_NAME = %s", [self.database, pipeline])
        return str(rows[0][0]) if rows else "<none>"

    def count(self, table: str) -> int:
        return int(self.db(f"SELECT COUNT(*) FROM `{table}`")[0][0])


@pytest.fixture
def env_factory(stack_config: Config, tmp_path: Path) -> Iterator[Callable[..., Env]]:
    from matchstream.engine.settings import open_connection

    with ExitStack() as cleanup:
        admin = KafkaAdminClient(bootstrap_servers=stack_config.kafka_bootstrap)
        cleanup.callback(admin.close)

        def make(partitions: int = 1) -> Env:
            suffix = uuid.uuid4().hex[:10]
            database, topic = f"eng_{suffix}", f"eng-{suffix}"
            admin.create_topics([NewTopic(topic, num_partitions=partitions,
                                          replication_factor=1)])
            conn = open_connection(stack_config)
            cleanup.callback(conn.close)
            catalog.ensure_catalog(conn)  # the teardown cleans its tables, even if nothing ran
            with conn.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE `{database}`")
                cursor.execute(f"USE `{database}`")
            conn.commit()
            producer = KafkaProducer(bootstrap_servers=stack_config.kafka_bootstrap,
                                     max_request_size=32 * 1024 * 1024, linger_ms=5)
            cleanup.callback(producer.close)
            sql_dir = tmp_path / f"sql-{suffix}"
            sql_dir.mkdir()
            env = Env(stack_config, database, topic, conn, sql_dir, producer)
            # Teardown runs these in reverse: the pipelines' rows in every catalog table, then
            # the database, then the clients. Each step is independent (ExitStack): a failure
            # cleaning one env still cleans the others, and is raised once all are done.
            cleanup.callback(env.db, f"DROP DATABASE `{database}`")
            for table in catalog.CATALOG_TABLES:
                cleanup.callback(
                    env.db,
                    f"DELETE FROM `{catalog.CATALOG_SCHEMA}`.`{table}` WHERE DATABASE_NAME = %s",
                    [database])
            return env

        yield make


@pytest.fixture
def env(env_factory: Callable[..., Env]) -> Env:
    return env_factory()


@dataclass
class EngineHandle:
    engine: Engine
    thread: threading.Thread
    stop: threading.Event


@pytest.fixture
def engine(stack_config: Config, tmp_path: Path) -> Iterator[EngineHandle]:
    """The engine running in a thread of the test process (same code as the engine process)."""
    settings = EngineSettings.from_config(
        stack_config, work_dir=tmp_path / "work", unpack_dir=tmp_path / "unpack",
        transform_timeout_s=5.0, retry_delay_s=0.05, poll_s=0.1)
    handle = EngineHandle(Engine(stack_config, settings), threading.Thread(), threading.Event())
    handle.thread = threading.Thread(target=handle.engine.run, args=(handle.stop,), daemon=True)
    handle.thread.start()
    yield handle
    handle.stop.set()
    handle.thread.join(timeout=30)
    assert not handle.thread.is_alive(), "the engine did not stop within 30 s"

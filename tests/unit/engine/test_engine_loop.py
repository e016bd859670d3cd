"""The engine's main loop survives a lost database (fakes: no MariaDB needed)."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pymysql
import pytest

from matchstream.config import Config
from matchstream.db import DatabaseUnreachable
from matchstream.engine import catalog
from matchstream.engine import engine as engine_module
from matchstream.engine.catalog import PipelineRow
from matchstream.engine.engine import Engine
from matchstream.engine.errors import EngineError
from matchstream.engine.settings import EngineSettings


class _Conn:
    def __init__(self, fail_begin: bool = False) -> None:
        self.fail_begin = fail_begin
        self.closed = False

    def begin(self) -> None:
        if self.fail_begin:
            raise pymysql.err.OperationalError(2013, "Lost connection to MySQL server")

    def commit(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def test_lost_connection_and_unreachable_server_are_retried(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """begin() fails (MariaDB restarted), the first reconnect is refused, the second works: the
    loop logs, backs off, reconnects and reads the catalog again instead of exiting."""
    broken, good = _Conn(fail_begin=True), _Conn()
    answers: list[Any] = [broken, DatabaseUnreachable("127.0.0.1:1", "nothing answers"), good]
    reads_after_reconnect = threading.Event()

    def open_connection(config: Config) -> Any:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def list_pipelines(conn: Any, **kw: Any) -> list[Any]:
        if conn is good:
            reads_after_reconnect.set()
        return []

    monkeypatch.setattr(engine_module, "open_connection", open_connection)
    monkeypatch.setattr(engine_module, "RECONNECT_BACKOFF_S", 0.01)
    monkeypatch.setattr(catalog, "ensure_catalog", lambda conn: None)
    monkeypatch.setattr(catalog, "claim_engine", lambda conn, wait_s: 1)
    monkeypatch.setattr(catalog, "list_pipelines", list_pipelines)
    config = Config(state_dir=tmp_path)
    engine = Engine(config, EngineSettings.from_config(config, poll_s=0.01))
    stop = threading.Event()
    caplog.set_level(logging.WARNING, logger=engine_module.__name__)
    thread = threading.Thread(target=engine.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert reads_after_reconnect.wait(10), "the engine did not reconnect"
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert broken.closed and good.closed
    failures = [r for r in caplog.records if "reconnecting in" in r.getMessage()]
    assert len(failures) == 2  # the lost connection, then the refused reconnect


def test_statement_of_a_row_that_is_not_a_create_is_an_engine_error() -> None:
    row = PipelineRow(1, "db", "p", "Stopped", "START PIPELINE p", "/", None, 0, 1)
    with pytest.raises(EngineError, match="StartPipeline instead of a CREATE PIPELINE"):
        row.statement()


def test_catalog_object_count_follows_the_ddl() -> None:
    """ensure_catalog compares with the tables and views the DDL creates, not a magic number."""
    assert catalog._CATALOG_OBJECTS == len(catalog._DDL) - 1 == 10

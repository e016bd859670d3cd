"""BatchTransaction: one BEGIN for the whole batch, statements one at a time, and nothing runs
after an abort (a fake connection records the calls: pure logic, no database)."""

from __future__ import annotations

import threading
import time

import pytest

from matchstream.engine.transaction import AbortSignal, BatchAborted, BatchTransaction


class FakeConnection:
    def __init__(self, *, rollback_fails: bool = False) -> None:
        self.calls: list[str] = []
        self.rollback_fails = rollback_fails

    def begin(self) -> None:
        self.calls.append("BEGIN")

    def commit(self) -> None:
        self.calls.append("COMMIT")

    def rollback(self) -> None:
        self.calls.append("ROLLBACK")
        if self.rollback_fails:
            raise ConnectionError("gone")


def test_one_begin_for_every_statement_then_one_commit() -> None:
    conn = FakeConnection()
    txn = BatchTransaction(conn)
    txn.run(lambda c: c.calls.append("LOAD p0"))
    txn.run(lambda c: c.calls.append("LOAD p1"))
    txn.run(lambda c: txn.commit())
    txn.abort()  # after the commit: nothing to roll back
    assert conn.calls == ["BEGIN", "LOAD p0", "LOAD p1", "COMMIT"]
    with pytest.raises(BatchAborted):
        txn.run(lambda c: c.calls.append("LOAD late"))


def test_after_an_abort_no_statement_runs_and_no_new_transaction_opens() -> None:
    conn = FakeConnection()
    txn = BatchTransaction(conn)
    txn.run(lambda c: c.calls.append("LOAD p0"))
    txn.abort()
    txn.abort()
    with pytest.raises(BatchAborted):
        txn.run(lambda c: c.calls.append("LOAD p1"))
    assert conn.calls == ["BEGIN", "LOAD p0", "ROLLBACK"]
    assert txn.aborted.is_set() and not txn.broken


def test_an_abort_before_any_statement_sends_nothing() -> None:
    conn = FakeConnection()
    txn = BatchTransaction(conn)
    txn.abort()
    assert conn.calls == []


def test_a_failed_rollback_marks_the_connection_broken() -> None:
    txn = BatchTransaction(FakeConnection(rollback_fails=True))
    txn.run(lambda c: None)
    txn.abort()
    assert txn.broken


def test_an_abort_waits_for_the_statement_under_way() -> None:
    conn = FakeConnection()
    txn = BatchTransaction(conn)
    started = threading.Event()

    def slow_load(c: FakeConnection) -> None:
        started.set()
        time.sleep(0.2)
        c.calls.append("LOAD done")

    loader = threading.Thread(target=txn.run, args=(slow_load,))
    loader.start()
    started.wait(5)
    txn.abort()
    loader.join(5)
    assert conn.calls == ["BEGIN", "LOAD done", "ROLLBACK"]


def test_the_abort_signal_reads_as_set_once_stop_is() -> None:
    stop = threading.Event()
    signal = AbortSignal(stop)
    assert not signal.is_set()
    stop.set()
    assert signal.is_set()
    txn = BatchTransaction(FakeConnection(), signal)
    with pytest.raises(BatchAborted):
        txn.run(lambda c: None)

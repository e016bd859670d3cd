"""One batch's database transaction, shared by all of its batch partitions.

SingleStore commits or rolls back a batch as a whole ("the batch fails and all its transactions
are rolled back"), so every batch partition of a round loads into this one transaction and the
runner commits it once, with every partition's cursor and batch row (batch.commit_batch). The
partitions' threads still read, transform and stage in parallel; only their statements take
turns on the one connection (a MariaDB session runs one statement at a time).

Once :meth:`BatchTransaction.abort` ran (a batch partition failed, STOP, a lost session) the
transaction is gone for good: a statement that comes later raises :class:`BatchAborted` instead
of opening a new transaction behind the runner's back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["AbortSignal", "BatchAborted", "BatchTransaction"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class BatchAborted(Exception):  # noqa: N818 - an internal signal, never shown to a user
    """The batch's transaction was rolled back (by another batch partition or by STOP)."""


class AbortSignal(threading.Event):
    """Set when the batch is lost; also reads as set once ``stop`` (STOP, engine shutdown) is.

    Only ``is_set`` sees ``stop``: the batch code polls it and never waits on it.
    """

    def __init__(self, stop: threading.Event) -> None:
        super().__init__()
        self._stop = stop

    def is_set(self) -> bool:
        return super().is_set() or self._stop.is_set()


class BatchTransaction:
    """``run(fn)`` runs ``fn(conn)`` inside the batch's transaction, one caller at a time.

    ``aborted`` is set by :meth:`abort`; a batch partition passes it on as its ``cancelled``
    event, so its transform and reads stop as soon as a sibling has failed.
    """

    def __init__(self, conn: Any, aborted: threading.Event | None = None) -> None:
        self.conn = conn
        self.aborted = aborted if aborted is not None else threading.Event()
        self.broken = False  # the connection failed: not to be reused
        self._lock = threading.RLock()
        self._open = False
        self._finished = False

    def run(self, fn: Callable[[Any], T]) -> T:
        with self._lock:
            if self.aborted.is_set() or self._finished:
                raise BatchAborted
            if not self._open:
                self.conn.begin()  # once: a second BEGIN would commit what came before
                self._open = True
            return fn(self.conn)

    def commit(self) -> None:
        """COMMIT (called inside :meth:`run` by the batch commit, after its guard)."""
        with self._lock:
            self.conn.commit()
            self._open = False
            self._finished = True

    def abort(self, *, broken: bool = False) -> None:
        """Roll everything back; safe to call from any thread, any number of times."""
        self.aborted.set()
        self.broken = self.broken or broken
        with self._lock:  # waits for a statement under way: the rollback must come after it
            if self._finished:
                return
            self._finished = True
            if not self._open:
                return
            self._open = False
            try:
                self.conn.rollback()
            except Exception:  # noqa: BLE001 - the session is gone; the server rolled it back
                self.broken = True
                log.debug("rollback of a batch transaction failed", exc_info=True)

"""A few database sessions kept open between refreshes of the dashboard.

Opening a session (TCP, handshake, authentication) cost more than the whole refresh's queries
on the demo's data (40-90 ms against 20-70 ms, 2-vCPU machine under load), and a page refreshes
every 2 s. Sessions are autocommit, so each SELECT reads the newest committed rows; a kept one
is pinged before use, and one that failed is closed instead of kept.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["SessionPool"]


class SessionPool:
    """Hands out sessions from ``connect()``, keeping up to ``keep`` idle ones.

    >>> class Conn:
    ...     open = True
    ...     def ping(self, reconnect): pass
    ...     def close(self): self.open = False
    >>> pool = SessionPool(Conn, keep=1)
    >>> with pool.session() as a: pass
    >>> with pool.session() as b: pass
    >>> a is b, pool.idle()
    (True, 1)
    >>> pool.close(); pool.idle(), a.open
    (0, False)
    """

    def __init__(self, connect: Callable[[], Any], *, keep: int = 2) -> None:
        self._connect, self._keep = connect, keep
        self._idle: list[Any] = []
        self._lock = threading.Lock()

    def idle(self) -> int:
        with self._lock:
            return len(self._idle)

    @contextlib.contextmanager
    def session(self) -> Iterator[Any]:
        conn = self._take() or self._connect()
        try:
            yield conn
        finally:
            self._give_back(conn)

    def _take(self) -> Any:
        while True:
            with self._lock:
                if not self._idle:
                    return None
                conn = self._idle.pop()
            try:
                conn.ping(reconnect=False)  # a server restart or wait_timeout since
                return conn
            except Exception:  # noqa: BLE001 - any failure: this session is gone, try the next
                _close(conn)

    def _give_back(self, conn: Any) -> None:
        # pymysql marks a session it lost (2006/2013, a read timeout) as not open.
        if getattr(conn, "open", False):
            with self._lock:
                if len(self._idle) < self._keep:
                    self._idle.append(conn)
                    return
        _close(conn)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            _close(conn)


def _close(conn: Any) -> None:
    with contextlib.suppress(Exception):
        conn.close()

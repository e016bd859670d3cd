"""Connections to the stack's MariaDB (the same MySQL protocol SingleStore speaks)."""

from __future__ import annotations

import pymysql

from matchstream.config import Config
from matchstream.errors import MatchstreamError

__all__ = ["DatabaseUnreachable", "connect"]

# MySQL error codes that mean "no session", as opposed to an error in a statement.
_CANNOT_CONNECT = {2002, 2003, 2005, 2006, 2013}
_ACCESS_DENIED = 1045


class DatabaseUnreachable(MatchstreamError):
    """No session could be opened; names the address and what to check."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"cannot connect to MariaDB at {address}: {reason}")
        self.address, self.reason = address, reason


def connect(
    config: Config, database: str | None = None, *, autocommit: bool = True,
    io_timeout_s: int | None = None,
) -> pymysql.Connection:
    """A pymysql connection as the stack's root user over TCP, LOCAL INFILE enabled.

    ``autocommit`` is on by default as in the ``mysql`` client; the engine turns it off for the
    transactions that must commit rows and cursors together. ``io_timeout_s`` bounds each read
    and write on the socket (None: wait for ever, as the ``mysql`` client does for a long query).
    """
    address = f"{config.host}:{config.db_port}"
    try:
        return pymysql.connect(
            host=config.host,
            port=config.db_port,
            user=config.db_user,
            password=config.db_password(),
            database=database,
            local_infile=True,
            autocommit=autocommit,
            charset="utf8mb4",
            connect_timeout=10,
            read_timeout=io_timeout_s,
            write_timeout=io_timeout_s,
        )
    except pymysql.err.OperationalError as exc:
        code = exc.args[0] if exc.args else None
        if code in _CANNOT_CONNECT:
            raise DatabaseUnreachable(
                address, "nothing answers; is the stack up? (matchstream status)"
            ) from exc
        if code == _ACCESS_DENIED:
            raise DatabaseUnreachable(
                address,
                f"access denied with the password in {config.db_password_file} "
                "(is this the state directory that started this server?)",
            ) from exc
        raise

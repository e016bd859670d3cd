"""Connections to the stack's MariaDB (the same MySQL protocol SingleStore speaks)."""

from __future__ import annotations

import pymysql

from matchstream.config import Config

__all__ = ["connect"]


def connect(
    config: Config, database: str | None = None, *, autocommit: bool = True
) -> pymysql.Connection:
    """A pymysql connection as the stack's root user over TCP, LOCAL INFILE enabled.

    ``autocommit`` is on by default as in the ``mysql`` client; the engine turns it off for the
    transactions that must commit rows and cursors together.
    """
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
    )

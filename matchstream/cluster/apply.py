"""Send the rendered statements to the cluster's aggregator, one session, in file order.

Like ``scripts/docker_up.sh`` and ``matchstream sql``: one session (a ``USE`` holds for the
files after it), stop at the first statement the cluster refuses and name it by ``file:line:col``.
The password comes from the cluster file into the driver: never a command line, never a log.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import pymysql

from matchstream.cluster.config import ClusterConfig
from matchstream.cluster.errors import ClusterApplyError
from matchstream.cluster.render import RenderedStatement
from matchstream.ddl.render import quote_identifier

__all__ = ["apply_statements", "connect"]

# MySQL client error codes that mean "no session" rather than a refused statement.
_CANNOT_CONNECT = {2002, 2003, 2005, 2006, 2013}
_ACCESS_DENIED = 1045


def connect(config: ClusterConfig) -> pymysql.Connection:
    """A session on the aggregator, TLS-verified against ``ssl_ca`` when the file names one."""
    ssl: dict[str, Any] | None = {"ca": config.ssl_ca} if config.ssl_ca else None
    try:
        return pymysql.connect(host=config.host, port=config.port, user=config.user,
                               password=config.password, ssl=ssl, autocommit=True,
                               charset="utf8mb4", connect_timeout=10)
    except pymysql.err.OperationalError as exc:
        code = exc.args[0] if exc.args else None
        if code in _CANNOT_CONNECT:
            reason = f"cannot connect to {config.address}: nothing answers"
        elif code == _ACCESS_DENIED:
            reason = (f"cannot connect to {config.address}: access denied for "
                      f"{config.user!r} with the password in {config.path}")
        else:
            reason = config.redact(f"cannot connect to {config.address}: {exc.args[-1]}")
        raise ClusterApplyError(config.path, reason, code) from exc


def apply_statements(
    statements: Sequence[RenderedStatement], connection: Any, *, start: bool = False,
    log: TextIO = sys.stderr, summary: Callable[[RenderedStatement], str] | None = None,
    redact: Callable[[str], str] = lambda text: text,
) -> list[str]:
    """Run every statement; with ``start``, then ``START PIPELINE IF NOT RUNNING`` for each
    pipeline created. Returns the pipelines' names."""
    describe = summary or _summary
    pipelines = []
    with connection.cursor() as cursor:
        for stmt in statements:
            _run(cursor, stmt.text, stmt.location, redact)
            print(f"{stmt.location}: ok: {describe(stmt)}", file=log)
            if stmt.pipeline is not None:
                pipelines.append(stmt.pipeline)
        if start:
            for name in pipelines:
                _run(cursor, f"START PIPELINE IF NOT RUNNING {quote_identifier(name)}",
                     f"START PIPELINE {name}", redact)
                print(f"started pipeline {name}", file=log)
    return pipelines


def _run(cursor: Any, text: str, location: str, redact: Callable[[str], str]) -> None:
    try:
        cursor.execute(text)
        if cursor.description is not None:
            cursor.fetchall()
    except pymysql.err.MySQLError as exc:
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        # A syntax error quotes the text near the fault, which may be the CREDENTIALS clause.
        raise ClusterApplyError(location, redact(f"the cluster refused it: {exc.args[-1]}"),
                                code) from exc


def _summary(stmt: RenderedStatement) -> str:
    """What the log says a statement was: never its text past the first words, which for a
    pipeline could reach its CREDENTIALS."""
    if stmt.pipeline is not None:
        return f"CREATE PIPELINE {stmt.pipeline}"
    code = " ".join(line for line in stmt.text.splitlines()
                    if line.strip() and not line.lstrip().startswith(("--", "#")))
    words = " ".join(code.split()[:6])
    return words if len(words) <= 70 else words[:67] + "..."

"""Run SQL scripts the way `matchstream sql` does: split, fill ``${NAME}`` placeholders, send
pipeline statements to the local engine and everything else, once the SingleStore gate
(:mod:`matchstream.gate`) has passed or translated it, to the database; print results.

One session (connection) runs a whole invocation, so ``USE db`` in one file applies to the next,
as in the ``mysql`` client. The first error stops the run and names ``file:line:col``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql

from matchstream.config import Config, project_root
from matchstream.db import connect
from matchstream.engine import catalog, variables
from matchstream.errors import MatchstreamError
from matchstream.gate import Forward, SetVariables, ShowVariables, Verdict, check_statement
from matchstream.output import ResultFormat, format_table

__all__ = [
    "ScriptSource",
    "SqlRunError",
    "check_variables",
    "default_variables",
    "format_table",
    "run_sources",
]


TABLE = ResultFormat()


class SqlRunError(MatchstreamError):
    """A statement of a script failed; names where it starts and what the server said."""

    def __init__(self, location: str, message: str) -> None:
        super().__init__(f"{location}: {message}")
        self.location, self.message = location, message


@dataclass(frozen=True)
class ScriptSource:
    """SQL text and where it came from; ``base_dir`` resolves relative transform paths."""

    text: str
    name: str
    base_dir: Path

    @classmethod
    def from_file(cls, path: Path) -> ScriptSource:
        return cls(path.read_text(encoding="utf-8"), str(path), path.resolve().parent)


# Placeholder values land verbatim inside SQL string literals and in transform arguments, which
# SingleStore splits on spaces: whitespace, quotes and backslashes cannot survive either.
_UNSAFE_VALUE = re.compile(r"[\s'\"\\]")


def check_variables(variables: Mapping[str, str]) -> None:
    """Reject values that would be cut or break the SQL, naming the placeholder."""
    for name, value in variables.items():
        if _UNSAFE_VALUE.search(value):
            raise MatchstreamError(
                f"${{{name}}} = {value!r}: whitespace, quotes and backslashes cannot be passed "
                "through a pipeline's SQL and transform arguments (for a default path: move the "
                "checkout or the state directory to a path without them)"
            )


def default_variables(config: Config) -> dict[str, str]:
    """Placeholder values for the local stack; ``--var NAME=VALUE`` overrides each.

    The container path keeps its own values in ``docker/pipeline-vars.env``.
    """
    root = project_root()
    return {
        "KAFKA": config.kafka_bootstrap,
        "TRANSFORMS": str(root / "transforms"),
        "MODEL_DIR": str(config.state_dir / "models"),
        "FEATURES": str(root / "data" / "features.json"),
    }


def run_sources(
    sources: Iterable[ScriptSource],
    *,
    config: Config,
    variables: Mapping[str, str],
    emit: Callable[[str], None] = print,
    database: str | None = None,
    result_format: ResultFormat = TABLE,
    note: Callable[[str], None] | None = None,
) -> int:
    """Run every statement of ``sources`` in order on one session; return how many ran.

    Result sets go to ``emit`` as ``result_format`` renders them; statement messages ("Query
    OK, ...") to ``note`` (``emit`` when not given).
    """
    out = _Output(emit, note or emit, result_format)
    from matchstream.ddl import parse_statement, prepare_script

    check_variables(variables)
    try:
        conn = connect(config, database)
    except pymysql.MySQLError as exc:
        raise SqlRunError(f"database {database!r}", f"ERROR {exc.args[0]}: {exc.args[-1]}") from exc
    ran = 0
    try:
        for source in sources:
            for stmt in prepare_script(source.text, source.name, dict(variables)):
                if stmt.is_pipeline:
                    parsed = parse_statement(
                        stmt.text, line=stmt.line, col=stmt.col, source=source.name
                    )
                    _run_pipeline_statement(conn, parsed, config, source, stmt.location, out)
                else:
                    verdict = check_statement(stmt.text, source=source.name, line=stmt.line,
                                              col=stmt.col)
                    _run_verdict(conn, config, verdict, stmt.location, out)
                ran += 1
    finally:
        conn.close()
    return ran


@dataclass(frozen=True)
class _Output:
    emit: Callable[[str], None]
    note: Callable[[str], None]
    result_format: ResultFormat

    def result(self, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        text = self.result_format.render(columns, rows)
        if text:
            self.emit(text)


def _run_verdict(
    conn: pymysql.Connection, config: Config, verdict: Verdict, location: str, out: _Output
) -> None:
    try:
        if isinstance(verdict, Forward):
            for warning in verdict.warnings:
                print(warning, file=sys.stderr)  # stderr: stdout stays the result sets
            if verdict.uses_catalog:
                _ensure_catalog(config)
            _run_sql(conn, verdict.text, out)
        elif isinstance(verdict, SetVariables):
            _set_variables(config, verdict)
            out.note("Query OK, 0 rows affected")
        elif isinstance(verdict, ShowVariables):
            _show_variables(conn, config, verdict, out)
    except pymysql.MySQLError as exc:
        code, message = (exc.args + (None, str(exc)))[:2] if exc.args else (None, str(exc))
        raise SqlRunError(location, f"ERROR {code}: {message}") from exc


def _run_sql(conn: pymysql.Connection, text: str, out: _Output) -> None:
    with conn.cursor() as cursor:
        cursor.execute(text)  # no parameters: a '%' in the text stays as written
        while True:
            if cursor.description:
                columns = [d[0] for d in cursor.description]
                out.result(columns, cursor.fetchall())
            if not cursor.nextset():
                break


def _ensure_catalog(config: Config) -> None:
    """The catalog exists (its DDL would commit the session's open transaction, so it runs on a
    connection of its own; after the first time in a process it costs nothing)."""
    if catalog.is_ensured(config.host, config.db_port):
        return
    from matchstream.engine.settings import open_connection

    conn = open_connection(config)
    try:
        catalog.ensure_catalog(conn)
    finally:
        conn.close()


def _set_variables(config: Config, verdict: SetVariables) -> None:
    """SET GLOBAL pipelines_*: in the catalog, on a connection of its own, so the session's
    open transaction is neither committed nor rolled back by it (a SET GLOBAL is not part of
    the session's transaction)."""
    from matchstream.engine.settings import open_connection

    conn = open_connection(config)
    try:
        catalog.ensure_catalog(conn)
        variables.set_variables(conn, dict(verdict.values))
        conn.commit()
    finally:
        conn.close()


def _show_variables(
    conn: pymysql.Connection, config: Config, verdict: ShowVariables, out: _Output
) -> None:
    """MariaDB's rows, with the pipelines_* engine variables the pattern matches merged in."""
    with conn.cursor() as cursor:
        cursor.execute(verdict.text)
        columns = [d[0] for d in cursor.description or ()] or ["Variable_name", "Value"]
        rows = [tuple(r) for r in cursor.fetchall()]
    _ensure_catalog(config)
    names = [n for n in variables.VARIABLES
             if verdict.like is None or like_matches(verdict.like, n)]
    rows += variables.variable_rows(conn, names)
    out.result(columns, sorted(rows, key=lambda r: str(r[0])))


def like_matches(pattern: str, value: str) -> bool:
    r"""SQL ``LIKE`` with MariaDB's default collation: case-insensitive, ``%``, ``_``, ``\``.

    >>> like_matches("pipelines%", "pipelines_batch_interval"), like_matches("a\\_b", "axb")
    (True, False)
    """
    regex = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            regex.append(re.escape(next(chars, "\\")))
        elif ch == "%":
            regex.append(".*")
        elif ch == "_":
            regex.append(".")
        else:
            regex.append(re.escape(ch))
    return re.fullmatch("".join(regex), value, re.IGNORECASE | re.DOTALL) is not None


def _run_pipeline_statement(
    conn: pymysql.Connection,
    statement: Any,
    config: Config,
    source: ScriptSource,
    location: str,
    out: _Output,
) -> None:
    from matchstream.engine.statements import ResultSet, execute

    # Pipeline statements run in explicit transactions (they commit implicitly, as on
    # SingleStore); ordinary statements keep the client's usual autocommit.
    conn.autocommit(False)
    try:
        result = execute(statement, conn=conn, config=config, sql_dir=source.base_dir)
    except MatchstreamError as exc:
        raise SqlRunError(location, str(exc)) from exc
    except pymysql.MySQLError as exc:
        raise SqlRunError(location, f"ERROR: {exc}") from exc
    finally:
        conn.autocommit(True)
    if isinstance(result, ResultSet):
        out.result(result.columns, result.rows)
    elif result.text:
        out.note(result.text)

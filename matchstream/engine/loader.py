"""Loading a batch partition's text into the target table with ``LOAD DATA LOCAL INFILE``.

SingleStore parses transform output (or raw messages) exactly like ``LOAD DATA`` with the
pipeline's FIELDS/LINES/column list/SET options; the local engine hands the same options to
MariaDB. One difference has to be undone here: with ``LOCAL`` MariaDB downgrades *every* row
error to a warning (too few/many fields, bad values, duplicate keys) because it cannot stop the
client mid-file. The loader therefore reads ``SHOW WARNINGS`` after each load and applies the
pipeline's own error-handling clause:

=============================  =================================================================
clause                         a warning of this kind ...
=============================  =================================================================
(none)                         fails the batch partition (SingleStore's strict default)
``REPLACE``                    duplicates replace the old row; anything else fails
``IGNORE``                     is accepted (the row is loaded as MariaDB coerced it), logged
``SKIP DUPLICATE KEY ERRORS``  duplicates are discarded and logged; anything else fails
``SKIP PARSER ERRORS``         lines with a wrong field count are discarded and logged
``SKIP CONSTRAINT ERRORS``     lines with bad values are discarded and logged
``SKIP ALL ERRORS``            all three
=============================  =================================================================

"Discarded" lines are removed from the input and the load is repeated inside the same
transaction (``ROLLBACK TO SAVEPOINT``), so the rows that do load are exactly what MariaDB makes
of the remaining lines. The caller owns the transaction; nothing here commits.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matchstream.ddl.ast import (
    ColumnRef,
    CreatePipeline,
    DiscardField,
    ErrorHandling,
    VarRef,
)
from matchstream.ddl.render import quote_identifier
from matchstream.engine.errors import UnsupportedOption

__all__ = ["LoadResult", "LoadSpec", "RowIssue", "RowRejected", "lines_of", "load_file"]

PARSER_CODES = frozenset({1261, 1262})  # too few fields / too many fields
DUPLICATE_CODES = frozenset({1062, 1022, 1586})
# A variable name no user picks, for bare ``@`` entries (MariaDB has no bare ``@``).
DISCARD_VAR = "@`__matchstream_discard`"
# Reloading after removing rejected lines converges in one pass unless removing lines changes
# how later lines parse (an unbalanced ENCLOSED BY); this bounds the passes.
MAX_LOAD_PASSES = 5
_ROW_RE = re.compile(r"\b[Rr]ow (\d+)\b")


@dataclass(frozen=True)
class RowIssue:
    """One MariaDB warning about one input line."""

    code: int
    message: str
    line_number: int | None  # 1-based line of the loaded input, when MariaDB names it

    @property
    def category(self) -> str:
        if self.code in PARSER_CODES:
            return "parser"
        if self.code in DUPLICATE_CODES:
            return "duplicate"
        return "constraint"


class RowRejected(Exception):  # noqa: N818 - internal signal, turned into a LoadError by batch.py
    def __init__(self, issue: RowIssue) -> None:
        super().__init__(issue.message)
        self.issue = issue


@dataclass
class LoadResult:
    rows_affected: int
    warnings: list[RowIssue] = field(default_factory=list)  # accepted, become Warning rows


@dataclass(frozen=True)
class LoadSpec:
    """The parts of a CREATE PIPELINE statement that shape its ``LOAD DATA``."""

    database: str
    table: str
    fields_terminated_by: str
    enclosed_by: str
    optionally_enclosed: bool
    escaped_by: str
    lines_starting_by: str
    lines_terminated_by: str
    ignore_lines: int
    columns: tuple[str, ...] | None  # already-quoted column list entries
    set_clause: str | None
    charset: str | None
    replace: bool
    handling: ErrorHandling | None

    @classmethod
    def from_pipeline(cls, stmt: CreatePipeline, database: str) -> LoadSpec:
        if stmt.trailing_nullcols:
            raise UnsupportedOption(stmt.name, "TRAILING NULLCOLS", "MariaDB has no equivalent")
        if stmt.null_defined_by is not None:
            raise UnsupportedOption(
                stmt.name, "NULL DEFINED BY", "use SET col = NULLIF(@var, 'str') instead"
            )
        if stmt.where is not None:
            raise UnsupportedOption(
                stmt.name, "WHERE", "MariaDB's LOAD DATA has no WHERE; filter in the transform"
            )
        fields_ = stmt.effective_fields
        lines = stmt.effective_lines
        columns: tuple[str, ...] | None = None
        if stmt.columns is not None:
            entries = []
            for item in stmt.columns:
                if isinstance(item, ColumnRef):
                    entries.append(quote_identifier(item.name))
                elif isinstance(item, VarRef):
                    entries.append("@" + quote_identifier(item.name))
                elif isinstance(item, DiscardField):
                    entries.append(DISCARD_VAR)
            columns = tuple(entries)
        set_clause = None
        if stmt.set_assignments:
            set_clause = ", ".join(
                f"{quote_identifier(a.column)} = {a.expression}" for a in stmt.set_assignments
            )
        assert fields_.terminated_by is not None and fields_.enclosed_by is not None
        assert fields_.escaped_by is not None
        assert lines.starting_by is not None and lines.terminated_by is not None
        return cls(
            database=database,
            table=stmt.table,
            fields_terminated_by=fields_.terminated_by,
            enclosed_by=fields_.enclosed_by,
            optionally_enclosed=fields_.optionally_enclosed,
            escaped_by=fields_.escaped_by,
            lines_starting_by=lines.starting_by,
            lines_terminated_by=lines.terminated_by,
            ignore_lines=stmt.ignore_lines or 0,
            columns=columns,
            set_clause=set_clause,
            charset=stmt.charset,
            replace=stmt.replace,
            handling=stmt.error_handling,
        )

    def target(self, table: str | None = None) -> str:
        return f"{quote_identifier(self.database)}.{quote_identifier(table or self.table)}"

    def statement(self, table: str | None = None) -> tuple[str, list[Any]]:
        """The ``LOAD DATA`` text with ``%s`` placeholders and its parameters (file name first).

        Identifiers are backquoted; every string value is a parameter. SET is verbatim SQL.
        """
        params: list[Any] = []
        sql = "LOAD DATA LOCAL INFILE %s "
        if self.replace:
            sql += "REPLACE "
        elif self.handling is ErrorHandling.IGNORE:
            sql += "IGNORE "
        sql += "INTO TABLE " + self.target(table)
        if self.charset:
            sql += " CHARACTER SET " + quote_identifier(self.charset)
        sql += " FIELDS TERMINATED BY %s "
        params.append(self.fields_terminated_by)
        sql += ("OPTIONALLY " if self.optionally_enclosed else "") + "ENCLOSED BY %s ESCAPED BY %s"
        params += [self.enclosed_by, self.escaped_by]
        sql += " LINES STARTING BY %s TERMINATED BY %s"
        params += [self.lines_starting_by, self.lines_terminated_by]
        if self.ignore_lines:
            sql += f" IGNORE {int(self.ignore_lines)} LINES"
        if self.columns is not None:
            sql += " (" + ", ".join(self.columns) + ")"
        if self.set_clause:
            sql += " SET " + self.set_clause
        return sql, params

    def accepts(self, issue: RowIssue) -> str | None:
        """``"keep"`` (row stays as loaded), ``"drop"`` (discard the line) or None (fail)."""
        category = issue.category
        handling = self.handling
        if handling is ErrorHandling.IGNORE:
            return "keep"
        if category == "duplicate":
            if handling in (ErrorHandling.SKIP_DUPLICATE_KEY_ERRORS, ErrorHandling.SKIP_ALL_ERRORS):
                return "keep"  # MariaDB already discarded the duplicate row
            return None
        if category == "parser" and handling in (
            ErrorHandling.SKIP_PARSER_ERRORS,
            ErrorHandling.SKIP_ALL_ERRORS,
        ):
            return "drop"
        if category == "constraint" and handling in (
            ErrorHandling.SKIP_CONSTRAINT_ERRORS,
            ErrorHandling.SKIP_ALL_ERRORS,
        ):
            return "drop"
        return None


def _issues(cursor: Any) -> list[RowIssue]:
    cursor.execute("SHOW WARNINGS")
    issues = []
    for level, code, message in cursor.fetchall():
        if level == "Note":
            continue
        match = _ROW_RE.search(message)
        issues.append(RowIssue(int(code), message, int(match.group(1)) if match else None))
    return issues


def _report_order(issue: RowIssue) -> tuple[int, int]:
    rank = {"parser": 0, "duplicate": 1, "constraint": 2}[issue.category]
    return (issue.line_number if issue.line_number is not None else 1 << 62, rank)


def split_lines(data: bytes, terminator: bytes) -> list[bytes]:
    """Input lines as LOAD DATA counts them (a final terminator does not start a new line)."""
    if not data:
        return []
    parts = data.split(terminator)
    if parts and parts[-1] == b"":
        parts.pop()
    return parts


def load_file(conn: Any, path: Path, spec: LoadSpec, *, table: str | None = None) -> LoadResult:
    """Load ``path`` into the target (or ``table``) inside the caller's open transaction.

    1. ``SAVEPOINT``, then ``LOAD DATA LOCAL INFILE`` with the pipeline's options.
    2. Classify each warning with :meth:`LoadSpec.accepts`: a warning the clause does not cover
       raises :class:`RowRejected` (the caller rolls back the whole batch partition).
    3. Lines to discard are left out of a copy of the file (``<path>.kept``), and the load
       repeats from the savepoint. Line numbers in the result always refer to ``path``.
    """
    sql, params = spec.statement(table)
    terminator = spec.lines_terminated_by.encode()
    current = path
    numbers: list[int] | None = None  # line index in `current` -> line number in `path`
    dropped: set[int] = set()
    accepted: list[RowIssue] = []
    with conn.cursor() as cursor:
        cursor.execute("SAVEPOINT matchstream_load")
        for _ in range(MAX_LOAD_PASSES):
            rows = cursor.execute(sql, [str(current), *params])
            drop: set[int] = set()
            keep: list[RowIssue] = []
            rejected: list[RowIssue] = []
            for issue in _issues(cursor):
                number = issue.line_number
                if numbers is not None and number is not None and 0 < number <= len(numbers):
                    number = numbers[number - 1]
                issue = RowIssue(issue.code, issue.message, number)
                verdict = spec.accepts(issue)
                if verdict is None or (verdict == "drop" and number is None):
                    rejected.append(issue)
                    continue
                if verdict == "drop" and number is not None:
                    drop.add(number)
                keep.append(issue)
            if rejected:
                # Report the first bad line, and for it the field-count problem before the bad
                # values it causes (an empty line is "too few fields", not "bad integer").
                raise RowRejected(min(rejected, key=_report_order))
            if not drop:
                accepted.extend(keep)
                return LoadResult(rows, accepted)
            cursor.execute("ROLLBACK TO SAVEPOINT matchstream_load")
            accepted.extend(i for i in keep if i.line_number in drop)
            dropped |= drop
            lines = split_lines(path.read_bytes(), terminator)
            numbers = [n for n in range(1, len(lines) + 1) if n not in dropped]
            current = path.with_name(path.name + ".kept")
            current.write_bytes(b"".join(lines[n - 1] + terminator for n in numbers))
    raise RowRejected(RowIssue(0, "input did not settle after removing rejected lines", None))


def lines_of(path: Path, spec: LoadSpec, numbers: Sequence[int]) -> dict[int, bytes]:
    """The raw bytes of the given 1-based input lines, for PIPELINES_ERRORS.LOAD_DATA_LINE."""
    wanted = set(numbers)
    if not wanted:
        return {}
    lines = split_lines(path.read_bytes(), spec.lines_terminated_by.encode())
    return {n: lines[n - 1] for n in wanted if 0 < n <= len(lines)}

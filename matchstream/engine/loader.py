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

``WHERE`` (MariaDB's ``LOAD DATA`` has none) goes through a staging table in the same
transaction: a session ``CREATE TEMPORARY TABLE`` with the target's columns (same types, NULL-ness,
defaults and generated columns; no keys, no CHECKs, the AUTO_INCREMENT column nullable and plain)
plus a line-order column, ``LOAD DATA`` into it with the pipeline's own options (the same
per-line warnings and discards as above), then ``INSERT IGNORE | REPLACE INTO target (...)
SELECT ... FROM staging AS <table> WHERE (<expr>) ORDER BY line`` whose warnings (duplicate keys,
CHECKs) go through the same policy, then ``DROP TEMPORARY TABLE``. CREATE/DROP TEMPORARY TABLE do
not commit implicitly in MariaDB (``ALTER TABLE`` on a temporary table does, so it is never used).
"""

from __future__ import annotations

import logging
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
from matchstream.ddl.errors import DdlError
from matchstream.ddl.render import quote_identifier
from matchstream.ddl.set_clause import (
    BATCH_ID_VARIABLE,
    MESSAGE_PROPERTIES,
    ExpressionProblem,
    property_variable,
    translate,
)
from matchstream.ddl.tokens import TokenType, tokenize
from matchstream.engine.errors import UnsupportedOption

__all__ = [
    "BATCH_ID_VARIABLE", "LoadResult", "LoadSpec", "RowIssue", "RowRejected", "lines_of",
    "load_file", "where_variables",
]

log = logging.getLogger(__name__)

PARSER_CODES = frozenset({1261, 1262})  # too few fields / too many fields
DUPLICATE_CODES = frozenset({1062, 1022, 1586})
# A variable name no user picks, for bare ``@`` entries (MariaDB has no bare ``@``).
DISCARD_VAR = "@`__matchstream_discard`"
# Reloading after removing rejected lines converges in one pass unless removing lines changes
# how later lines parse (an unbalanced ENCLOSED BY); this bounds the passes.
MAX_LOAD_PASSES = 5
_ROW_RE = re.compile(r"\b[Rr]ow (\d+)\b")
# The session's staging table for WHERE, and its column keeping the input order.
STAGING_TABLE = "__matchstream_stage"
LINE_COLUMN = "__matchstream_line"


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
    where: str | None = None  # verbatim SQL condition, applied through a staging table
    # SET calls pipeline_batch_id(): the session variable BATCH_ID_VARIABLE holds it per load.
    uses_batch_id: bool = False
    topic: str = ""
    # get_kafka_pipeline_prop() names SET reads. Per message (offset, timestamp): a field put in
    # front of every line of the message (message_lines), read into property_variable(name) by
    # the column list. Per batch partition (partition, topic name): session variables set
    # before each LOAD DATA.
    message_properties: tuple[str, ...] = ()
    partition_properties: tuple[str, ...] = ()

    @classmethod
    def from_pipeline(cls, stmt: CreatePipeline, database: str) -> LoadSpec:
        if stmt.trailing_nullcols:
            raise UnsupportedOption(stmt.name, "TRAILING NULLCOLS", "MariaDB has no equivalent")
        if stmt.null_defined_by is not None:
            raise UnsupportedOption(
                stmt.name, "NULL DEFINED BY", "use SET col = NULLIF(@var, 'str') instead"
            )
        if stmt.where is not None:
            variables = where_variables(stmt.where)
            if variables:
                name, column = variables[0]
                raise UnsupportedOption(
                    stmt.name, f"the LOAD DATA variable {name} in WHERE (column {column} of "
                    f"the condition {stmt.where!r})",
                    "WHERE is evaluated on the rows after SET, when @variables no longer hold "
                    "the row's values; SET a column from the variable and filter on the column",
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
        uses_batch_id = False
        properties: set[str] = set()
        if stmt.set_assignments:
            parts = []
            for a in stmt.set_assignments:
                try:
                    translated = translate(a.expression)
                except ExpressionProblem as problem:  # the parser checked it: a stored oddity
                    raise UnsupportedOption(stmt.name, f"SET {a.column} = {a.expression}",
                                            problem.reason) from None
                parts.append(f"{quote_identifier(a.column)} = {translated.sql}")
                uses_batch_id |= translated.batch_id
                properties |= translated.properties
            set_clause = ", ".join(parts)
        assert fields_.terminated_by is not None and fields_.enclosed_by is not None
        assert fields_.escaped_by is not None
        assert lines.starting_by is not None and lines.terminated_by is not None
        per_message = tuple(p for p in MESSAGE_PROPERTIES if p in properties)
        if per_message:
            _check_message_properties(stmt, per_message[0], fields_.terminated_by,
                                      lines.starting_by, lines.terminated_by)
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
            where=stmt.where,
            uses_batch_id=uses_batch_id,
            topic=stmt.source.topic,
            message_properties=per_message,
            partition_properties=tuple(sorted(properties - set(per_message))),
        )

    def target(self, table: str | None = None) -> str:
        return f"{quote_identifier(self.database)}.{quote_identifier(table or self.table)}"

    def statement(
        self, table: str | None = None, *, columns: tuple[str, ...] | None = None
    ) -> tuple[str, list[Any]]:
        """The ``LOAD DATA`` text with ``%s`` placeholders and its parameters (file name first).

        Identifiers are backquoted; every string value is a parameter. SET is verbatim SQL.
        ``columns`` (quoted entries) stands in for a missing column list (the staging table).
        Every verbatim part has its ``%`` doubled: the text goes to the driver with parameters,
        so ``DATE_FORMAT(@d, '%Y')`` would otherwise be taken for a placeholder.
        """
        params: list[Any] = []
        sql = "LOAD DATA LOCAL INFILE %s "
        if self.replace:
            sql += "REPLACE "
        elif self.handling is ErrorHandling.IGNORE:
            sql += "IGNORE "
        sql += "INTO TABLE " + self.target(table).replace("%", "%%")
        if self.charset:
            sql += " CHARACTER SET " + quote_identifier(self.charset).replace("%", "%%")
        sql += " FIELDS TERMINATED BY %s "
        params.append(self.fields_terminated_by)
        sql += ("OPTIONALLY " if self.optionally_enclosed else "") + "ENCLOSED BY %s ESCAPED BY %s"
        params += [self.enclosed_by, self.escaped_by]
        sql += " LINES STARTING BY %s TERMINATED BY %s"
        params += [self.lines_starting_by, self.lines_terminated_by]
        if self.ignore_lines:
            sql += f" IGNORE {int(self.ignore_lines)} LINES"
        column_list = self.columns if self.columns is not None else columns
        if self.message_properties:
            assert column_list is not None, "per-message properties need the column list"
            column_list = (*(property_variable(p) for p in self.message_properties),
                           *column_list)
        if column_list is not None:
            sql += " (" + ", ".join(column_list).replace("%", "%%") + ")"
        if self.set_clause:
            sql += " SET " + self.set_clause.replace("%", "%%")
        return sql, params

    def message_lines(self, messages: Sequence[Any]) -> list[bytes]:
        """Each message's value as ``LOAD DATA`` reads it: ending in the line terminator and,
        when SET reads per-message properties, every line of it starting with their fields
        (``<offset><FIELDS TERMINATED BY>...``), so each row carries its own message's values.
        ``messages`` have ``value``, ``offset`` and ``timestamp`` (extractor.Message).

        No field holds a line terminator, so line numbers are those of the plain values.
        """
        terminator = self.lines_terminated_by.encode()
        values = [m.value if m.value.endswith(terminator) else m.value + terminator
                  for m in messages]
        if not self.message_properties:
            return values
        separator = self.fields_terminated_by.encode()
        enclosure, escape = self.enclosed_by.encode(), self.escaped_by.encode()
        literal = separator.replace(b"%", b"%%")  # the pattern is %-formatted
        pattern = literal.join(b"%d" for _ in self.message_properties) + literal
        attributes = ["offset" if p == "prop_offset" else "timestamp"
                      for p in self.message_properties]
        last = -len(terminator)
        out = []
        for message, value in zip(messages, values, strict=True):
            prefix = pattern % tuple(getattr(message, a) for a in attributes)
            if value.find(terminator) == len(value) + last:  # one line, the usual case
                out.append(prefix + value)
                continue
            starts = line_starts(value, terminator, separator, enclosure, escape)
            out.append(b"".join(prefix + value[a:b] for a, b
                                in zip(starts, [*starts[1:], len(value)], strict=True)))
        return out

    def without_prefix(self, line: bytes) -> bytes:
        """``line`` as the message had it (the per-message property fields removed)."""
        separator = self.fields_terminated_by.encode()
        for _ in self.message_properties:
            head, found, rest = line.partition(separator)
            if not found or not head.lstrip(b"-").isdigit():
                return line
            line = rest
        return line

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


def where_variables(condition: str) -> list[tuple[str, int]]:
    """The ``@variables`` (not ``@@system`` ones) in a WHERE condition, with their 1-based
    column in the condition text (the AST keeps the condition as one line)."""
    found = []
    try:
        for token in tokenize(condition):
            if token.type is TokenType.VARIABLE and not token.text.startswith("@@"):
                found.append((token.text, token.col))
    except DdlError:  # the parser already accepted the text; MariaDB reports anything else
        return []
    return found


def _classify(
    spec: LoadSpec, issues: Sequence[RowIssue]
) -> tuple[list[RowIssue], set[int], list[RowIssue]]:
    """Split warnings into accepted ones, line numbers to discard, and rejected ones."""
    keep: list[RowIssue] = []
    drop: set[int] = set()
    rejected: list[RowIssue] = []
    for issue in issues:
        verdict = spec.accepts(issue)
        if verdict is None or (verdict == "drop" and issue.line_number is None):
            rejected.append(issue)
            continue
        if verdict == "drop" and issue.line_number is not None:
            drop.add(issue.line_number)
        keep.append(issue)
    return keep, drop, rejected


def _check_message_properties(stmt: CreatePipeline, name: str, separator: str,
                              starting_by: str, terminator: str) -> None:
    """Where the per-message property fields of :meth:`LoadSpec.message_lines` cannot go."""
    what = f"get_kafka_pipeline_prop('{name}')"
    if stmt.transform is not None:
        raise UnsupportedOption(
            stmt.name, f"{what} with WITH TRANSFORM",
            "a transform sees only message values and may write any number of rows for them, "
            "so no row has a message (SingleStore documents no value either)")
    if not separator or terminator in separator or separator in terminator:
        raise UnsupportedOption(stmt.name, f"{what} with FIELDS TERMINATED BY {separator!r}",
                                "the local engine passes it as a field of each line")
    if starting_by:
        raise UnsupportedOption(stmt.name, f"{what} with LINES STARTING BY {starting_by!r}",
                                "the local engine passes it as the first field of each line")


def line_starts(value: bytes, terminator: bytes, separator: bytes, enclosure: bytes,
                escape: bytes) -> list[int]:
    """Where each line of ``value`` starts, splitting as MariaDB's LOAD DATA does: a line
    terminator ends a line unless escaped or inside an enclosed field (one that starts with the
    enclosure character, which ends at an enclosure followed by a separator or terminator; a
    doubled enclosure is one literal character).

    >>> line_starts(b'a,"x\ny"\nb\\\nc\n', b"\n", b",", b'"', b"\\")
    [0, 9]
    """
    starts = [0]
    i, n = 0, len(value)
    field_start = True
    enclosed = False
    while i < n:
        if escape and value.startswith(escape, i):
            i += len(escape) + 1
            field_start = False
            continue
        if field_start and enclosure and value.startswith(enclosure, i):
            enclosed, field_start = True, False
            i += len(enclosure)
            continue
        if enclosed:
            if value.startswith(enclosure, i):
                after = i + len(enclosure)
                if value.startswith(enclosure, after):
                    i = after + len(enclosure)
                    continue
                if after >= n or value.startswith(separator, after) \
                        or value.startswith(terminator, after):
                    enclosed = False
                i = after
                continue
            i += 1
            continue
        if value.startswith(terminator, i):
            i += len(terminator)
            if i < n:
                starts.append(i)
            field_start = True
            continue
        if value.startswith(separator, i):
            i += len(separator)
            field_start = True
            continue
        field_start = False
        i += 1
    return starts


def load_file(conn: Any, path: Path, spec: LoadSpec, *, table: str | None = None,
              batch_id: int | None = None, partition: int | None = None) -> LoadResult:
    """Load ``path`` into the target (or ``table``) inside the caller's open transaction.

    1. ``SAVEPOINT``, then ``LOAD DATA LOCAL INFILE`` with the pipeline's options.
    2. Classify each warning with :meth:`LoadSpec.accepts`: a warning the clause does not cover
       raises :class:`RowRejected` (the caller rolls back the whole batch partition).
    3. Lines to discard are left out of a copy of the file (``<path>.kept``), and the load
       repeats from the savepoint. Line numbers in the result always refer to ``path``.

    With WHERE, steps 1-3 load a staging table and the filtered rows are then copied into the
    target (:func:`_load_filtered`). ``batch_id`` is what SET's ``pipeline_batch_id()`` gives,
    ``partition`` the Kafka partition for ``get_kafka_pipeline_prop('prop_partition')``.
    """
    values = {"prop_partition": None if partition is None else str(partition),
              "prop_topicname": spec.topic}
    assignments: list[tuple[str, object]] = [
        (property_variable(p), values[p]) for p in spec.partition_properties]
    if spec.uses_batch_id:
        assignments.append((BATCH_ID_VARIABLE, batch_id))
    if assignments:
        with conn.cursor() as cursor:
            cursor.execute("SET " + ", ".join(f"{name} = %s" for name, _ in assignments),
                           [value for _, value in assignments])
    if spec.where is not None:
        return _load_filtered(conn, path, spec, table)
    with conn.cursor() as cursor:
        columns = None
        if spec.message_properties and spec.columns is None:  # the fields need a column list
            columns = _staging(cursor, spec).load_columns
        sql, params = spec.statement(table, columns=columns)
        return _load_passes(cursor, path, spec, sql, params)


def _load_passes(
    cursor: Any, path: Path, spec: LoadSpec, sql: str, params: list[Any]
) -> LoadResult:
    terminator = spec.lines_terminated_by.encode()
    current = path
    numbers: list[int] | None = None  # line index in `current` -> line number in `path`
    dropped: set[int] = set()
    accepted: list[RowIssue] = []
    cursor.execute("SAVEPOINT matchstream_load")
    for _ in range(MAX_LOAD_PASSES):
        rows = cursor.execute(sql, [str(current), *params])
        issues = []
        for issue in _issues(cursor):
            number = issue.line_number
            if numbers is not None and number is not None and 0 < number <= len(numbers):
                number = numbers[number - 1]
            issues.append(RowIssue(issue.code, issue.message, number))
        keep, drop, rejected = _classify(spec, issues)
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


@dataclass(frozen=True)
class _Staging:
    """The staging table for one target table (built from ``information_schema.COLUMNS``)."""

    create: str  # CREATE TEMPORARY TABLE ...
    load_columns: tuple[str, ...]  # LOAD DATA's column list when the pipeline gives none
    copy_columns: tuple[str, ...]  # the columns INSERT ... SELECT copies (not generated)


def _staging(cursor: Any, spec: LoadSpec) -> _Staging:
    cursor.execute(
        "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA, IS_GENERATED, "
        "GENERATION_EXPRESSION, CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
        [spec.database, spec.table])
    rows = cursor.fetchall()
    if not rows:
        raise LookupError(f"Table '{spec.database}.{spec.table}' doesn't exist")
    definitions: list[str] = []
    load_columns: list[str] = []
    copy_columns: list[str] = []
    for name, type_, nullable, default, extra, generated, expression, charset, collation in rows:
        extra = (extra or "").upper()
        if "ROW START" in extra or "ROW END" in extra:
            continue  # system-versioning columns: MariaDB fills them itself
        quoted = quote_identifier(name)
        text = f"{quoted} {type_}"
        if charset:
            text += f" CHARACTER SET {charset} COLLATE {collation}"
        if generated == "ALWAYS":
            kind = "PERSISTENT" if ("STORED" in extra or "PERSISTENT" in extra) else "VIRTUAL"
            text += f" GENERATED ALWAYS AS ({expression}) {kind}"
        elif "AUTO_INCREMENT" in extra:
            # NULL/0 must reach the target, which then generates the value as LOAD DATA would.
            text += " NULL DEFAULT NULL"
            copy_columns.append(quoted)
        else:
            text += " NULL" if nullable == "YES" else " NOT NULL"
            if default is not None:
                text += f" DEFAULT {default}"
            copy_columns.append(quoted)
        if "INVISIBLE" not in extra:
            load_columns.append(quoted)
        definitions.append(text)
    definitions.append(f"{quote_identifier(LINE_COLUMN)} BIGINT UNSIGNED NOT NULL "
                       "AUTO_INCREMENT PRIMARY KEY")
    create = (f"CREATE TEMPORARY TABLE {spec.target(STAGING_TABLE)} ("
              + ", ".join(definitions) + ") ENGINE=InnoDB")
    return _Staging(create, tuple(load_columns), tuple(copy_columns))


def _load_filtered(conn: Any, path: Path, spec: LoadSpec, table: str | None) -> LoadResult:
    """LOAD DATA into the staging table, then ``INSERT IGNORE | REPLACE ... SELECT ... WHERE``.

    The staging load raises or discards per line exactly like a direct load (same column
    types, so the same warnings with the same line numbers). The copy's warnings carry no
    line: a duplicate key is skipped or fails the batch as in a direct load, where MariaDB
    names no line for it either. Everything happens in the caller's transaction.
    """
    assert spec.where is not None
    staging_table = spec.target(STAGING_TABLE)
    with conn.cursor() as cursor:
        staging = _staging(cursor, spec)
        cursor.execute(f"DROP TEMPORARY TABLE IF EXISTS {staging_table}")
        cursor.execute(staging.create)
        try:
            sql, params = spec.statement(STAGING_TABLE, columns=staging.load_columns)
            loaded = _load_passes(cursor, path, spec, sql, params)
            verb = "REPLACE" if spec.replace else "INSERT IGNORE"
            alias = quote_identifier(spec.table)
            columns = ", ".join(staging.copy_columns)
            selected = ", ".join(f"{alias}.{c}" for c in staging.copy_columns)
            rows = cursor.execute(
                f"{verb} INTO {spec.target(table)} ({columns}) SELECT {selected} "
                f"FROM {staging_table} AS {alias} WHERE ({spec.where}) "
                f"ORDER BY {alias}.{quote_identifier(LINE_COLUMN)}")
            # "Row N" in these warnings counts SELECT rows, not input lines: drop it.
            issues = [RowIssue(i.code, i.message, None) for i in _issues(cursor)]
            keep, _, rejected = _classify(spec, issues)
            if rejected:
                raise RowRejected(min(rejected, key=_report_order))
            return LoadResult(rows, [*loaded.warnings, *keep])
        finally:
            try:
                cursor.execute(f"DROP TEMPORARY TABLE IF EXISTS {staging_table}")
            except Exception:  # noqa: BLE001 - a lost session drops it anyway; keep the error
                log.debug("could not drop the staging table", exc_info=True)


def lines_of(path: Path, spec: LoadSpec, numbers: Sequence[int]) -> dict[int, bytes]:
    """The raw bytes of the given 1-based input lines, for PIPELINES_ERRORS.LOAD_DATA_LINE."""
    wanted = set(numbers)
    if not wanted:
        return {}
    lines = split_lines(path.read_bytes(), spec.lines_terminated_by.encode())
    return {n: spec.without_prefix(lines[n - 1]) for n in wanted if 0 < n <= len(lines)}

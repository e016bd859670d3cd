"""Render AST nodes back to SQL in SingleStore's normalised SHOW CREATE PIPELINE style.

Backquoted identifiers, upper-case keywords, single-quoted MySQL-escaped strings, one clause per
line for CREATE PIPELINE and the column list qualified as ```t`.`col```. ``render`` prints only what
the statement says (so ``parse_statement(render(node)) == node``); ``show_create`` first fills in
every FIELDS/LINES default, as SingleStore's SHOW CREATE PIPELINE does (docs §3.7).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from matchstream.ddl import ast

__all__ = ["quote_identifier", "quote_string", "render", "show_create"]

_STRING_ESCAPES = {
    "\\": "\\\\",
    "'": "\\'",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\0": "\\0",
    "\x1a": "\\Z",
    "\b": "\\b",
}
_PLAIN_VARIABLE = re.compile(r"[A-Za-z0-9_$.]+")


def quote_string(value: str) -> str:
    """``'...'`` with MySQL escapes, the inverse of the tokenizer's unescaping."""
    return "'" + "".join(_STRING_ESCAPES.get(ch, ch) for ch in value) + "'"


def quote_identifier(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _variable(name: str) -> str:
    return "@" + (name if _PLAIN_VARIABLE.fullmatch(name) else quote_identifier(name))


def _transform(spec: ast.TransformSpec) -> str:
    return f"({quote_string(spec.uri)}, {quote_string(spec.program)}, {quote_string(spec.args)})"


def _create(node: ast.CreatePipeline) -> str:
    head = "CREATE "
    head += "OR REPLACE " if node.or_replace else ""
    head += "AGGREGATOR " if node.aggregator else ""
    head += "PIPELINE "
    head += "IF NOT EXISTS " if node.if_not_exists else ""
    lines = [head + quote_identifier(node.name)]
    lines.append(f"AS LOAD DATA KAFKA {quote_string(node.source.endpoint)}")
    if node.config is not None:
        lines.append(f"CONFIG {quote_string(node.config)}")
    if node.credentials is not None:
        lines.append(f"CREDENTIALS {quote_string(node.credentials)}")
    for keyword, value in (
        ("BATCH_INTERVAL", node.batch_interval),
        ("MAX_PARTITIONS_PER_BATCH", node.max_partitions_per_batch),
        ("MAX_RETRIES_PER_BATCH_PARTITION", node.max_retries_per_batch_partition),
        ("MAX_OFFSETS_PER_BATCH_PARTITION", node.max_offsets_per_batch_partition),
    ):
        if value is not None:
            lines.append(f"{keyword} {value}")
    if node.transform is not None:
        lines.append(f"WITH TRANSFORM {_transform(node.transform)}")
    if node.retry_options is not None:
        lines.append(f"RETRY_OPTIONS {quote_string(node.retry_options.to_json())}")
    handling = [node.error_handling.value] if node.error_handling else []
    handling += ["REPLACE"] if node.replace else []
    if handling:
        lines.append(" ".join(handling))
    if node.stop_on_error is not None:
        lines.append(f"STOP_ON_ERROR {'ON' if node.stop_on_error else 'OFF'}")
    table = quote_identifier(node.table)
    lines.append(f"INTO TABLE {table}")
    if node.charset is not None:
        lines.append(f"CHARACTER SET {quote_identifier(node.charset)}")
    if node.fields is not None:
        lines.append(_fields(node.fields))
    if node.lines is not None:
        lines.append(_lines(node.lines))
    if node.trailing_nullcols:
        lines.append("TRAILING NULLCOLS")
    if node.null_defined_by is not None:
        text = f"NULL DEFINED BY {quote_string(node.null_defined_by.value)}"
        lines.append(
            text + (" OPTIONALLY ENCLOSED" if node.null_defined_by.optionally_enclosed else "")
        )
    if node.ignore_lines is not None:
        lines.append(f"IGNORE {node.ignore_lines} LINES")
    if node.columns is not None:
        lines.append("(" + ",".join(_column(item, table) for item in node.columns) + ")")
    if node.set_assignments:
        lines.append(
            "SET "
            + ", ".join(
                f"{quote_identifier(a.column)} = {a.expression}" for a in node.set_assignments
            )
        )
    if node.where is not None:
        lines.append(f"WHERE {node.where}")
    return "\n".join(lines)


def _fields(fields: ast.FieldsOptions) -> str:
    parts = ["FIELDS"]
    if fields.terminated_by is not None:
        parts.append(f"TERMINATED BY {quote_string(fields.terminated_by)}")
    if fields.enclosed_by is not None:
        optionally = "OPTIONALLY " if fields.optionally_enclosed else ""
        parts.append(f"{optionally}ENCLOSED BY {quote_string(fields.enclosed_by)}")
    if fields.escaped_by is not None:
        parts.append(f"ESCAPED BY {quote_string(fields.escaped_by)}")
    return " ".join(parts)


def _lines(lines: ast.LinesOptions) -> str:
    # SingleStore prints TERMINATED BY before STARTING BY (docs §3.7), unlike MySQL's grammar.
    parts = ["LINES"]
    if lines.terminated_by is not None:
        parts.append(f"TERMINATED BY {quote_string(lines.terminated_by)}")
    if lines.starting_by is not None:
        parts.append(f"STARTING BY {quote_string(lines.starting_by)}")
    return " ".join(parts)


def _column(item: ast.ColumnItem, table: str) -> str:
    if isinstance(item, ast.ColumnRef):
        return f"{table}.{quote_identifier(item.name)}"
    if isinstance(item, ast.VarRef):
        return _variable(item.name)
    return "@"


def _start(node: ast.StartPipeline) -> str:
    text = "START PIPELINE " + ("IF NOT RUNNING " if node.if_not_running else "")
    text += quote_identifier(node.name)
    if node.foreground:
        text += " FOREGROUND"
        if node.limit_batches is not None:
            text += f" LIMIT {node.limit_batches} BATCHES"
    return text


def _alter(node: ast.AlterPipeline) -> str:
    parts = [f"ALTER PIPELINE {quote_identifier(node.name)}"]
    in_set = False
    for action in node.actions:
        is_set = not isinstance(action, ast.SetStopOnError | ast.ReloadTransform)
        if is_set and not in_set:
            parts.append("SET")
        in_set = is_set
        parts.append(_alter_action(action))
    return " ".join(parts)


def _alter_action(action: ast.AlterAction) -> str:
    match action:
        case ast.SetOffsets(mode=ast.OffsetsMode.JSON, offsets_json=text):
            return f"OFFSETS {quote_string(text or '')}"
        case ast.SetOffsets(mode=mode):
            return f"OFFSETS {mode.value}"
        case ast.SetBatchInterval(milliseconds=value):
            return f"BATCH_INTERVAL {value}"
        case ast.SetMaxPartitionsPerBatch(value=value):
            return f"MAX_PARTITIONS_PER_BATCH {value}"
        case ast.SetMaxRetriesPerBatchPartition(value=value):
            return f"MAX_RETRIES_PER_BATCH_PARTITION {value}"
        case ast.SetMaxOffsetsPerBatchPartition(value=value):
            return f"MAX_OFFSETS_PER_BATCH_PARTITION {value}"
        case ast.SetConfig(config=text):
            return f"CONFIG {quote_string(text)}"
        case ast.SetCredentials(credentials=text):
            return f"CREDENTIALS {quote_string(text)}"
        case ast.SetRetryOptions(options=options):
            return f"RETRY_OPTIONS {quote_string(options.to_json())}"
        case ast.SetTransform(transform=spec):
            return f"TRANSFORM {_transform(spec)}"
        case ast.SetStopOnError(value=value):
            return "STOP_ON_ERROR " + {True: "ON", False: "OFF", None: "NONE"}[value]
        case ast.ReloadTransform():
            return "RELOAD TRANSFORM"
    raise TypeError(f"not an ALTER PIPELINE action: {action!r}")


def _extract(node: ast.ExtractPipeline) -> str:
    text = f"EXTRACT PIPELINE {quote_identifier(node.name)}"
    if node.source_partition is not None:
        text += f" FROM {quote_string(node.source_partition)}"
        if node.offsets is not None:
            text += f" OFFSETS {node.offsets[0]} TO {node.offsets[1]}"
    return text + f" INTO OUTFILE {quote_string(node.outfile)}"


def _select_into_kafka(node: ast.SelectIntoKafka) -> str:
    lines = [node.select, f"INTO KAFKA {quote_string(node.destination.endpoint)}"]
    if node.config is not None:
        lines.append(f"CONFIG {quote_string(node.config)}")
    if node.credentials is not None:
        lines.append(f"CREDENTIALS {quote_string(node.credentials)}")
    if node.fields is not None:
        lines.append(_fields(node.fields))
    if node.lines is not None:
        lines.append(_lines(node.lines))
    if node.key_column is not None:
        lines.append(f"KAFKA KEY {quote_identifier(node.key_column)}")
    return "\n".join(lines)


def _name_suffix(prefix: str, name: str | None) -> str:
    return prefix if name is None else f"{prefix} {quote_identifier(name)}"


_RENDERERS: dict[type, Callable[[Any], str]] = {
    ast.CreatePipeline: _create,
    ast.StartPipeline: _start,
    ast.StartAllPipelines: lambda _: "START ALL PIPELINES",
    ast.StopPipeline: lambda n: (
        "STOP PIPELINE " + ("IF RUNNING " if n.if_running else "") + quote_identifier(n.name)
    ),
    ast.StopAllPipelines: lambda _: "STOP ALL PIPELINES",
    ast.DropPipeline: lambda n: (
        "DROP PIPELINE " + ("IF EXISTS " if n.if_exists else "") + quote_identifier(n.name)
    ),
    ast.AlterPipeline: _alter,
    ast.ShowPipelines: lambda _: "SHOW PIPELINES",
    ast.ShowCreatePipeline: lambda n: (
        f"SHOW CREATE PIPELINE {quote_identifier(n.name)}" + (" EXTENDED" if n.extended else "")
    ),
    ast.TestPipeline: lambda n: (
        f"TEST PIPELINE {quote_identifier(n.name)}"
        + ("" if n.limit is None else f" LIMIT {n.limit}")
    ),
    ast.ExtractPipeline: _extract,
    ast.SelectIntoKafka: _select_into_kafka,
    ast.ClearPipelineErrors: lambda n: (
        _name_suffix("CLEAR PIPELINE ERRORS FOR", n.name)
        if n.name is not None
        else "CLEAR PIPELINE ERRORS"
    ),
}


def render(node: ast.Statement) -> str:
    """SQL text for ``node``, without a trailing ``;``.

    >>> render(ast.DropPipeline("events", if_exists=True))
    'DROP PIPELINE IF EXISTS `events`'
    """
    renderer = _RENDERERS.get(type(node))
    if renderer is None:
        raise TypeError(f"not a pipeline statement node: {node!r}")
    return renderer(node)


def show_create(node: ast.CreatePipeline) -> str:
    """The ``Create Pipeline`` column of SHOW CREATE PIPELINE: plain ``CREATE PIPELINE`` (no
    OR REPLACE / IF NOT EXISTS) with every FIELDS/LINES option spelled out. Credentials are kept:
    locally every user is the SUPER user SingleStore shows them to."""
    return render(replace(node.with_defaults(), or_replace=False, if_not_exists=False))

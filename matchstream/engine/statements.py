"""Executing parsed pipeline statements, the way SingleStore answers them.

``execute(statement, conn=..., config=..., sql_dir=...)`` returns a :class:`ResultSet` (SHOW
PIPELINES, SHOW CREATE PIPELINE, TEST PIPELINE) or a :class:`Message` with a row count
(``SELECT ... INTO KAFKA``: the rows produced). Like
SingleStore, every pipeline statement first commits the session's open transaction. Background
START/STOP/ALTER only change the catalog; the engine process reacts within a second.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pymysql

from matchstream.config import Config
from matchstream.ddl import ast, render, show_create
from matchstream.ddl.render import quote_identifier
from matchstream.ddl.set_clause import translate
from matchstream.engine import catalog
from matchstream.engine.batch import pipeline_dir_name, stage_input
from matchstream.engine.catalog import PipelineRow, State
from matchstream.engine.errors import (
    BatchPartitionError,
    EngineError,
    PipelineStateError,
    UnknownPipeline,
)
from matchstream.engine.extractor import Extractor, client_options, pipeline_extractor
from matchstream.engine.into_kafka import select_into_kafka
from matchstream.engine.loader import LoadSpec, RowRejected, load_file
from matchstream.engine.runner import PipelineRunner, build_plan
from matchstream.engine.settings import EngineSettings, open_connection
from matchstream.engine.transform_runner import (
    install_transform,
    remove_transform,
    resolve_transform,
)
from matchstream.framing import encode_frames

__all__ = ["HIDDEN", "Message", "ResultSet", "execute"]

# What SHOW CREATE PIPELINE prints instead of a CREDENTIALS value.
HIDDEN = "<hidden>"


@dataclass(frozen=True)
class ResultSet:
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


@dataclass(frozen=True)
class Message:
    text: str
    rowcount: int = 0


Result = ResultSet | Message


def _current_database(conn: Any) -> str:
    with conn.cursor() as cursor:
        cursor.execute("SELECT DATABASE()")
        row = cursor.fetchone()
    if not row or row[0] is None:
        raise EngineError("No database selected: pipelines live in a database (USE db first)")
    return str(row[0])


def _require(conn: Any, database: str, name: str, *, for_update: bool = True) -> PipelineRow:
    row = catalog.get_pipeline(conn, database, name, for_update=for_update)
    if row is None:
        raise UnknownPipeline(database, name)
    return row


def execute(statement: ast.Statement, *, conn: Any, config: Config, sql_dir: Path) -> Result:
    """Run one parsed pipeline statement on the session ``conn`` (its current database)."""
    conn.commit()  # pipeline statements commit implicitly, as on SingleStore
    catalog.ensure_catalog(conn)
    database = _current_database(conn)
    settings = EngineSettings.from_config(config)
    ctx = _Context(conn, config, settings, database, Path(sql_dir).resolve())
    handler = _HANDLERS.get(type(statement))
    if handler is None:
        raise EngineError(f"{type(statement).__name__} is not supported by the local engine")
    try:
        result = handler(ctx, statement)
        conn.commit()
        return result
    except BaseException:
        conn.rollback()
        raise


@dataclass(frozen=True)
class _Context:
    conn: Any
    config: Config
    settings: EngineSettings
    database: str
    sql_dir: Path


def _table_exists(ctx: _Context, table: str) -> bool:
    with ctx.conn.cursor() as cursor:
        cursor.execute(
            "SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
            "AND TABLE_NAME = %s", [ctx.database, table])
        return cursor.fetchone() is not None


def _validate(ctx: _Context, stmt: ast.CreatePipeline) -> str | None:
    """What CREATE checks before storing anything; returns the resolved transform path."""
    LoadSpec.from_pipeline(stmt, ctx.database)  # rejects clauses MariaDB cannot honour
    # CONFIG/CREDENTIALS keys the local Kafka client cannot take are refused, never ignored.
    client_options(stmt.name, stmt.config_dict(), stmt.credentials_dict())
    if not _table_exists(ctx, stmt.table):
        raise EngineError(f"Table '{ctx.database}.{stmt.table}' doesn't exist")
    _check_set(ctx, stmt)
    if stmt.where is not None:
        _check_where(ctx, stmt, stmt.where)
    if stmt.transform is None:
        return None
    # Copied (or unpacked) now, as SingleStore copies it to the leaves at CREATE.
    resolved = install_transform(stmt.transform, sql_dir=ctx.sql_dir,
                                 unpack_dir=_transform_dir(ctx, stmt.name))
    return str(resolved.executable)


def _transform_dir(ctx: _Context, name: str) -> Path:
    return ctx.settings.unpack_dir / pipeline_dir_name(ctx.database, name)


def _check_set(ctx: _Context, stmt: ast.CreatePipeline) -> None:
    """MariaDB compiles each SET assignment as LOAD DATA will run it (SingleStore's built-ins
    and casts translated): an unknown column on the left, a wrong argument count or type fails
    CREATE instead of every batch. The @variables are unset session variables here (NULL)."""
    target = f"{quote_identifier(ctx.database)}.{quote_identifier(stmt.table)}"
    for assignment in stmt.set_assignments:
        expression = translate(assignment.expression).sql
        _compiles(ctx, stmt, f"SELECT {quote_identifier(assignment.column)}, ({expression}) "
                  f"FROM {target} LIMIT 0",
                  f"SET {quote_identifier(assignment.column)} = {assignment.expression}")


def _check_where(ctx: _Context, stmt: ast.CreatePipeline, condition: str) -> None:
    """MariaDB compiles the condition against the table, as the staging copy will see it
    (same column names, the table's name as alias): unknown columns and syntax errors fail
    CREATE instead of every batch."""
    alias = quote_identifier(stmt.table)
    _compiles(ctx, stmt, f"SELECT 1 FROM {quote_identifier(ctx.database)}.{alias} AS {alias} "
              f"WHERE ({condition}) LIMIT 0", f"WHERE {condition!r}")


def _compiles(ctx: _Context, stmt: ast.CreatePipeline, probe: str, clause: str) -> None:
    """Run ``probe`` (a SELECT that reads no row) or fail CREATE naming ``clause``."""
    try:
        with ctx.conn.cursor() as cursor:
            cursor.execute(probe)  # no parameters: pymysql leaves a '%' (modulo) as written
            cursor.fetchall()
    except pymysql.MySQLError as exc:
        args: tuple[Any, ...] = tuple(exc.args)
        reason = str(args[1]) if len(args) > 1 else str(exc)
        raise EngineError(f"pipeline '{stmt.name}': {clause} does not work on table "
                          f"'{stmt.table}': {reason}") from None


def _create(ctx: _Context, stmt: ast.CreatePipeline) -> Result:
    existing = catalog.get_pipeline(ctx.conn, ctx.database, stmt.name, for_update=True)
    if existing is not None and stmt.if_not_exists:
        return Message(f"Pipeline '{stmt.name}' already exists; nothing done")
    if existing is not None and not stmt.or_replace:
        raise EngineError(f"Pipeline '{stmt.name}' already exists")
    transform_path = _validate(ctx, stmt)
    stored = replace(stmt, or_replace=False, if_not_exists=False)
    definition = render(stored)
    if existing is None:
        catalog.insert_pipeline(
            ctx.conn, database=ctx.database, name=stmt.name, definition=definition,
            sql_dir=str(ctx.sql_dir), transform_path=transform_path,
            config_json=catalog.config_json(stored))
    else:  # OR REPLACE keeps state and cursors
        catalog.update_definition(
            ctx.conn, existing.pipeline_id, definition=definition, sql_dir=str(ctx.sql_dir),
            transform_path=transform_path, config_json=catalog.config_json(stored),
            replaced=True)
    return Message("Query OK")


_RUNNING_STATES = (State.RUNNING, State.FOREGROUND, State.TESTING)


def _start_row(ctx: _Context, row: PipelineRow) -> None:
    """Background START of a locked, stopped row: the definition must still run (transform
    present, clauses supported) - fail now, not later in the engine process."""
    build_plan(row, ctx.settings, run_state=State.RUNNING)
    catalog.set_state(ctx.conn, row.pipeline_id, State.RUNNING)


def _stop_row(ctx: _Context, row: PipelineRow) -> bool:
    """STOP a locked row; False if it was not running (background or foreground)."""
    if row.state not in (State.RUNNING, State.FOREGROUND):
        return False
    catalog.set_state(ctx.conn, row.pipeline_id, State.STOPPED)
    return True


def _start(ctx: _Context, stmt: ast.StartPipeline) -> Result:
    row = _require(ctx.conn, ctx.database, stmt.name)
    if row.state in _RUNNING_STATES:
        if stmt.if_not_running:
            return Message(f"Pipeline '{stmt.name}' is already running")
        raise PipelineStateError(stmt.name, row.state, "START needs a stopped pipeline "
                                 "(use START PIPELINE IF NOT RUNNING)")
    if not stmt.foreground:
        _start_row(ctx, row)
        return Message("Query OK")
    catalog.set_state(ctx.conn, row.pipeline_id, State.FOREGROUND)
    ctx.conn.commit()
    try:
        runner = PipelineRunner(ctx.config, row, ctx.settings, foreground=True)
        summary = runner.run(threading.Event(), limit_batches=stmt.limit_batches,
                             stop_when_idle=True)
    finally:
        ctx.conn.begin()
        catalog.set_state(ctx.conn, row.pipeline_id, State.STOPPED, only_if=[State.FOREGROUND])
        ctx.conn.commit()
    if summary.error is not None:
        raise summary.error
    return Message(f"Query OK, {summary.rows} rows affected", summary.rows)


def _start_all(ctx: _Context, stmt: ast.StartAllPipelines) -> Result:
    """START PIPELINE IF NOT RUNNING for every pipeline of the database, in one transaction:
    one pipeline that cannot run fails the statement and none is started."""
    started = 0
    for row in catalog.list_pipelines(ctx.conn, ctx.database, for_update=True):
        if row.state not in _RUNNING_STATES:
            _start_row(ctx, row)
            started += 1
    return Message(f"Query OK, {started} pipelines started")


def _stop(ctx: _Context, stmt: ast.StopPipeline) -> Result:
    row = _require(ctx.conn, ctx.database, stmt.name)
    if not _stop_row(ctx, row):
        if stmt.if_running:
            return Message(f"Pipeline '{stmt.name}' is not running")
        raise PipelineStateError(stmt.name, row.state, "STOP needs a running pipeline "
                                 "(use STOP PIPELINE IF RUNNING)")
    return Message("Query OK")


def _stop_all(ctx: _Context, stmt: ast.StopAllPipelines) -> Result:
    stopped = sum(_stop_row(ctx, row)
                  for row in catalog.list_pipelines(ctx.conn, ctx.database, for_update=True))
    return Message(f"Query OK, {stopped} pipelines stopped")


def _drop(ctx: _Context, stmt: ast.DropPipeline) -> Result:
    row = catalog.get_pipeline(ctx.conn, ctx.database, stmt.name, for_update=True)
    if row is None:
        if stmt.if_exists:
            return Message(f"Pipeline '{stmt.name}' doesn't exist; nothing done")
        raise UnknownPipeline(ctx.database, stmt.name)
    catalog.delete_pipeline(ctx.conn, ctx.database, stmt.name)
    remove_transform(_transform_dir(ctx, stmt.name))
    return Message("Query OK")


def _extractor(stmt: ast.CreatePipeline, database: str) -> Extractor:
    return pipeline_extractor(stmt, client_id=f"matchstream-stmt-{database}.{stmt.name}")


def _set_offsets(ctx: _Context, row: PipelineRow, stmt: ast.CreatePipeline,
                 action: ast.SetOffsets) -> None:
    catalog.get_cursors(ctx.conn, ctx.database, row.name, for_update=True)
    if action.mode is ast.OffsetsMode.JSON:
        targets = action.partition_offsets()
        for partition, offset in targets.items():
            catalog.put_cursor(ctx.conn, ctx.database, row.name, partition, cursor=offset)
        return
    extractor = _extractor(stmt, ctx.database)
    try:
        partitions = extractor.partitions()
        marks = extractor.watermarks(partitions)
    finally:
        extractor.close()
    for partition, mark in marks.items():
        offset = mark.low if action.mode is ast.OffsetsMode.EARLIEST else mark.high
        catalog.put_cursor(ctx.conn, ctx.database, row.name, partition, cursor=offset,
                           earliest=mark.low, latest=mark.high)


def _alter(ctx: _Context, stmt: ast.AlterPipeline) -> Result:
    row = _require(ctx.conn, ctx.database, stmt.name)
    definition = row.statement()
    changed = False
    for action in stmt.actions:
        if isinstance(action, ast.SetOffsets):
            _set_offsets(ctx, row, definition, action)
            continue
        if isinstance(action, ast.OptionAction):
            definition = action.apply(definition)
        elif not isinstance(action, ast.ReloadTransform):
            raise EngineError(f"ALTER action {type(action).__name__} is not supported")
        changed = True
    if changed:
        # A new transform may not suit the SET clause (per-message Kafka properties).
        LoadSpec.from_pipeline(definition, ctx.database)
        client_options(definition.name, definition.config_dict(), definition.credentials_dict())
        sql_dir = ctx.sql_dir if any(isinstance(a, ast.SetTransform) for a in stmt.actions) \
            else Path(row.sql_dir)
        transform_path = None
        if definition.transform is not None:
            # SET TRANSFORM and RELOAD TRANSFORM copy the transform again; other changes keep
            # the copy the pipeline runs.
            fresh = any(isinstance(a, ast.SetTransform | ast.ReloadTransform)
                        for a in stmt.actions)
            place = install_transform if fresh else resolve_transform
            transform_path = str(place(definition.transform, sql_dir=sql_dir,
                                       unpack_dir=_transform_dir(ctx, row.name)).executable)
        catalog.update_definition(
            ctx.conn, row.pipeline_id, definition=render(definition), sql_dir=str(sql_dir),
            transform_path=transform_path, config_json=catalog.config_json(definition),
            replaced=False)
    return Message("Query OK")


def _show_pipelines(ctx: _Context, stmt: ast.ShowPipelines) -> Result:
    rows = []
    for row in catalog.list_pipelines(ctx.conn, ctx.database):
        scheduled = "True" if row.state == State.RUNNING else "False"
        rows.append((row.name, row.state, scheduled))
    return ResultSet((f"Pipelines_in_{ctx.database}", "State", "Scheduled"), rows)


def _show_create(ctx: _Context, stmt: ast.ShowCreatePipeline) -> Result:
    row = _require(ctx.conn, ctx.database, stmt.name, for_update=False)
    text = show_create(_hide_credentials(row.statement()))
    if stmt.extended:
        cursors = catalog.get_cursors(ctx.conn, ctx.database, row.name)
        offsets = {str(p): c.cursor for p, c in sorted(cursors.items())}
        text += (f"\nALTER PIPELINE {quote_identifier(row.name)} SET OFFSETS "
                 f"'{json.dumps(offsets)}'")
    return ResultSet(("Pipeline", "Create Pipeline"), [(row.name, text)])


def _hide_credentials(stmt: ast.CreatePipeline) -> ast.CreatePipeline:
    """CREDENTIALS with every value replaced by ``<hidden>``: the keys show which secrets are
    set, the values never leave the catalog (SingleStore hides them from non-SUPER users)."""
    secrets = stmt.credentials_dict()
    if not secrets:
        return stmt
    return replace(stmt, credentials=json.dumps(dict.fromkeys(secrets, HIDDEN)))


def _not_running(row: PipelineRow, what: str) -> None:
    if row.state in _RUNNING_STATES:
        raise PipelineStateError(row.name, row.state, f"{what} needs a stopped pipeline")


def _test(ctx: _Context, stmt: ast.TestPipeline) -> Result:
    """Extract and transform from the cursors, parse with MariaDB into a temporary copy of the
    table, return the rows; nothing is written and no cursor moves."""
    row = _require(ctx.conn, ctx.database, stmt.name, for_update=False)
    _not_running(row, "TEST PIPELINE")
    plan = build_plan(row, ctx.settings, run_state=State.TESTING)
    definition = plan.stmt
    limit = stmt.limit if stmt.limit is not None else \
        definition.effective_max_offsets_per_batch_partition
    cursors = catalog.get_cursors(ctx.conn, ctx.database, row.name)
    conn = open_connection(ctx.config, ctx.database)
    extractor = _extractor(definition, ctx.database)
    temp = f"__matchstream_test_{row.pipeline_id}"
    out_columns: tuple[str, ...] = ()
    rows: list[tuple[Any, ...]] = []
    try:
        partitions = extractor.partitions()
        marks = extractor.watermarks(partitions)
        with conn.cursor() as cursor:
            cursor.execute(f"CREATE TEMPORARY TABLE {quote_identifier(temp)} "
                           f"LIKE {plan.spec.target()}")
            cursor.execute(f"SELECT * FROM {quote_identifier(temp)} LIMIT 0")
            all_columns = tuple(d[0] for d in cursor.description or ())
        wanted = _test_columns(definition, all_columns)
        for partition in partitions:
            if limit <= 0:
                break
            start = cursors[partition].cursor if partition in cursors else marks[partition].low
            if start >= marks[partition].high:
                continue
            data = extractor.read(partition, start, limit, end_hint=marks[partition].high)
            limit -= len(data.messages)
            staged = stage_input(plan, data, dry_run=True)
            try:
                conn.begin()
                try:
                    load_file(conn, staged.path, plan.spec, table=temp, partition=partition)
                except RowRejected as exc:
                    raise BatchPartitionError(
                        exc.issue.message, pipeline=row.name, topic=plan.topic,
                        partition=partition, start=data.start, end=data.end,
                        line_number=exc.issue.line_number) from None
                with conn.cursor() as cursor:
                    cursor.execute("SELECT " + ", ".join(quote_identifier(c) for c in wanted)
                                   + f" FROM {quote_identifier(temp)}")
                    rows.extend(tuple(r) for r in cursor.fetchall())
                    cursor.execute(f"DELETE FROM {quote_identifier(temp)}")
                conn.rollback()
            finally:
                staged.path.unlink(missing_ok=True)
                staged.path.with_name(staged.path.name + ".kept").unlink(missing_ok=True)
        out_columns = wanted
    finally:
        extractor.close()
        conn.close()  # drops the temporary table
    return ResultSet(out_columns, rows)


def _test_columns(stmt: ast.CreatePipeline, all_columns: tuple[str, ...]) -> tuple[str, ...]:
    if stmt.columns is None:
        return all_columns
    named = [c.name for c in stmt.columns if isinstance(c, ast.ColumnRef)]
    named += [a.column for a in stmt.set_assignments if a.column not in named]
    return tuple(named)


def _extract(ctx: _Context, stmt: ast.ExtractPipeline) -> Result:
    """Write the framed bytes the transform would receive for the next batch partition(s)."""
    row = _require(ctx.conn, ctx.database, stmt.name, for_update=False)
    _not_running(row, "EXTRACT PIPELINE")
    if row.state == State.ERROR:
        raise PipelineStateError(row.name, row.state, "EXTRACT PIPELINE is not allowed in Error")
    definition = row.statement()
    cursors = catalog.get_cursors(ctx.conn, ctx.database, row.name)
    extractor = _extractor(definition, ctx.database)
    payloads: list[bytes] = []
    try:
        partitions = extractor.partitions()
        if stmt.source_partition is not None:
            partitions = [p for p in partitions if str(p) == stmt.source_partition]
        marks = extractor.watermarks(partitions)
        for partition in partitions:
            if stmt.offsets is not None:
                start, end = stmt.offsets
            else:
                start = cursors[partition].cursor if partition in cursors else marks[partition].low
                end = min(marks[partition].high,
                          start + definition.effective_max_offsets_per_batch_partition)
            if end <= start:
                continue
            data = extractor.read(partition, start, end - start, end_hint=end)
            payloads.extend(m.value for m in data.messages)
    finally:
        extractor.close()
    out = Path(stmt.outfile)
    if not out.is_absolute():
        out = ctx.sql_dir / out
    out.write_bytes(encode_frames(payloads))
    return Message(f"Query OK, {len(payloads)} messages written to {out}", len(payloads))


def _clear_errors(ctx: _Context, stmt: ast.ClearPipelineErrors) -> Result:
    if stmt.name is not None:
        _require(ctx.conn, ctx.database, stmt.name, for_update=False)
    count = catalog.clear_errors(ctx.conn, ctx.database, stmt.name)
    return Message(f"Query OK, {count} rows affected", count)


def _select_into_kafka(ctx: _Context, stmt: ast.SelectIntoKafka) -> Result:
    """The query on the session's database, each row one message (engine/into_kafka.py)."""
    rows = select_into_kafka(ctx.conn, stmt, database=ctx.database)
    return Message(f"Query OK, {rows} rows affected", rows)


_HANDLERS: dict[type, Any] = {
    ast.CreatePipeline: _create,
    ast.StartPipeline: _start,
    ast.StartAllPipelines: _start_all,
    ast.StopPipeline: _stop,
    ast.StopAllPipelines: _stop_all,
    ast.DropPipeline: _drop,
    ast.AlterPipeline: _alter,
    ast.ShowPipelines: _show_pipelines,
    ast.ShowCreatePipeline: _show_create,
    ast.TestPipeline: _test,
    ast.ExtractPipeline: _extract,
    ast.ClearPipelineErrors: _clear_errors,
    ast.SelectIntoKafka: _select_into_kafka,
}

"""One batch partition: transform and load one Kafka partition's offset range, exactly once.

The protocol (docs/engine.md, "Exactly once"):

1. The extracted messages are written to a work file: through the transform (one fresh process,
   framed stdin, stdout into the file) or, without a transform, as raw lines.
2. ``LOAD DATA LOCAL INFILE`` runs inside a transaction (:mod:`matchstream.engine.loader`).
3. Still inside it, the pipeline's registry row and this partition's cursor are locked
   (``SELECT ... FOR UPDATE``): the pipeline must still be in the state the runner runs it in
   and the cursor must still equal the range's start. Otherwise STOP, DROP, ``SET OFFSETS`` or
   another engine got there first and everything is rolled back (the range is *superseded*).
4. The cursor moves to the range's end and the PIPELINES_BATCHES row is written.
5. COMMIT. A failure anywhere before it - transform exit, parse error, a killed engine - leaves
   the table and the cursor exactly as they were, so the same range is simply done again.

Because STOP updates the same registry row, a STOP that arrives during step 2 waits for the
commit of step 5 (the batch finishes) or, if it came first, makes step 3 roll back: a STOP never
leaves half a batch.
"""

from __future__ import annotations

import bisect
import enum
import logging
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql

from matchstream.ddl.ast import CreatePipeline
from matchstream.engine import catalog
from matchstream.engine.errors import (
    CODE_TRANSFORM_START,
    CODE_TRANSFORM_TIMEOUT,
    BatchPartitionError,
    LoadError,
    TransformError,
)
from matchstream.engine.extractor import PartitionData
from matchstream.engine.loader import LoadResult, LoadSpec, RowRejected, lines_of, load_file
from matchstream.engine.transform_runner import ResolvedTransform, run_transform

__all__ = ["Outcome", "PartitionResult", "PipelinePlan", "run_batch_partition", "stage_input"]

log = logging.getLogger(__name__)


class Outcome(enum.Enum):
    COMMITTED = "committed"
    SUPERSEDED = "superseded"  # state or cursor changed under us: rolled back, not an error
    FAILED = "failed"


@dataclass(frozen=True)
class PipelinePlan:
    """Everything a batch partition needs to know about its pipeline."""

    database: str
    pipeline_id: int
    stmt: CreatePipeline
    spec: LoadSpec
    transform: ResolvedTransform | None
    run_state: str  # the registry STATE the commit requires (Running or Running...Foreground)
    transform_timeout_s: float
    work_dir: Path

    @property
    def name(self) -> str:
        return self.stmt.name

    @property
    def topic(self) -> str:
        return self.stmt.source.topic


@dataclass
class PartitionResult:
    partition: int
    start: int
    end: int
    outcome: Outcome
    rows: int = 0
    error: BatchPartitionError | None = None
    warnings: list[Any] = field(default_factory=list)


@dataclass
class StagedInput:
    """The work file ``LOAD DATA`` reads, and how its lines map back to offsets."""

    path: Path
    transformed: bool
    stderr: str = ""
    transform_seconds: float = 0.0
    # Without a transform: line number (1-based) where each message starts, for error rows.
    message_first_lines: list[int] = field(default_factory=list)

    def message_of_line(self, data: PartitionData, line_number: int) -> int | None:
        """Index in ``data.messages`` of the message that produced ``line_number``."""
        if self.transformed or not self.message_first_lines:
            return None
        index = bisect.bisect_right(self.message_first_lines, line_number) - 1
        return index if 0 <= index < len(data.messages) else None


def _error(
    cls: type[BatchPartitionError], plan: PipelinePlan, data: PartitionData, reason: str,
    **kw: Any,
) -> BatchPartitionError:
    return cls(reason, pipeline=plan.name, topic=plan.topic, partition=data.partition,
               start=data.start, end=data.end, **kw)


def stage_input(
    plan: PipelinePlan, data: PartitionData, *, cancelled: threading.Event | None = None
) -> StagedInput:
    """Step 1: write what ``LOAD DATA`` will read; raises TransformError if the transform fails."""
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, deleted by the caller
        prefix=f"{plan.name}-p{data.partition}-{data.start}-", suffix=".load",
        dir=plan.work_dir, delete=False,
    )
    path = Path(handle.name)
    if plan.transform is not None:
        with handle:
            outcome = run_transform(
                plan.transform, [m.value for m in data.messages], handle,
                timeout_s=plan.transform_timeout_s, cancelled=cancelled,
            )
        if not outcome.ok:
            if outcome.timed_out:
                code = CODE_TRANSFORM_TIMEOUT
            elif outcome.returncode == 127 and "cannot start" in outcome.stderr_tail:
                code = CODE_TRANSFORM_START
            else:
                code = TransformError.code
            raise _error(TransformError, plan, data,
                         outcome.failure_reason(plan.transform_timeout_s),
                         code=code, stderr=outcome.stderr_tail)
        return StagedInput(path, True, outcome.stderr_tail, outcome.seconds)
    terminator = plan.spec.lines_terminated_by.encode()
    firsts: list[int] = []
    line = 1
    with handle:
        for message in data.messages:
            firsts.append(line)
            value = message.value
            if not value.endswith(terminator):
                value += terminator
            handle.write(value)
            line += value.count(terminator)
    return StagedInput(path, False, message_first_lines=firsts)


def _guard(conn: Any, plan: PipelinePlan, data: PartitionData) -> str | None:
    """Step 3: None if this range may commit, else why not."""
    row = catalog.get_pipeline(conn, plan.database, plan.name, for_update=True)
    if row is None or row.pipeline_id != plan.pipeline_id:
        return "the pipeline was dropped"
    if row.state != plan.run_state:
        return f"the pipeline is now {row.state}"
    cursors = catalog.get_cursors(conn, plan.database, plan.name, for_update=True)
    current = cursors.get(data.partition)
    if current is None or current.cursor != data.start:
        moved = None if current is None else current.cursor
        return f"the cursor moved to {moved} (SET OFFSETS or another engine)"
    return None


def _rejected_error(
    plan: PipelinePlan, data: PartitionData, staged: StagedInput, exc: RowRejected
) -> BatchPartitionError:
    """A rejected line as a LoadError: for Kafka without a transform the "line" is the whole
    message (as SingleStore reports it) and the message names its offset."""
    issue = exc.issue
    line = None
    reason = issue.message
    if issue.line_number is not None:
        index = staged.message_of_line(data, issue.line_number)
        if index is not None:
            line = data.messages[index].value
            reason += f" (message at offset {data.messages[index].offset})"
        else:
            line = lines_of(staged.path, plan.spec, [issue.line_number]).get(issue.line_number)
    return _error(LoadError, plan, data, reason, code=issue.code or None, line=line,
                  line_number=issue.line_number, stderr=staged.stderr)


def run_batch_partition(
    conn: Any,
    plan: PipelinePlan,
    data: PartitionData,
    *,
    batch_id: int,
    attempt: int,
    extract_seconds: float = 0.0,
    cancelled: threading.Event | None = None,
) -> PartitionResult:
    """Steps 1-5 of the module docstring for one batch partition; never raises for bad data.

    A failure is returned (``Outcome.FAILED`` with the error) after the rollback, with its
    PIPELINES_ERRORS row and the failed attempt's PIPELINES_BATCHES row committed.
    """
    started = time.time()
    result = PartitionResult(data.partition, data.start, data.end, Outcome.FAILED)
    staged: StagedInput | None = None
    load: LoadResult | None = None
    try:
        staged = stage_input(plan, data, cancelled=cancelled)
        if cancelled is not None and cancelled.is_set():
            result.outcome = Outcome.SUPERSEDED
            return result
        conn.begin()
        try:
            load = load_file(conn, staged.path, plan.spec)
        except RowRejected as exc:
            raise _rejected_error(plan, data, staged, exc) from None
        except Exception as exc:  # a MariaDB error for the whole statement (no such table...)
            load_args: tuple[Any, ...] = tuple(exc.args)
            code = load_args[0] if load_args and isinstance(load_args[0], int) else None
            message = str(load_args[1]) if len(load_args) > 1 else str(exc)
            raise _error(LoadError, plan, data, message, code=code,
                         stderr=staged.stderr) from exc
        why_not = _guard(conn, plan, data)
        if why_not is None and cancelled is not None and cancelled.is_set():
            why_not = "the engine is stopping"
        if why_not is not None:
            conn.rollback()
            log.info("%s %s[%d]@%d..%d rolled back: %s", plan.name, plan.topic, data.partition,
                     data.start, data.end, why_not)
            result.outcome = Outcome.SUPERSEDED
            return result
        catalog.put_cursor(conn, plan.database, plan.name, data.partition, cursor=data.end)
        elapsed = time.time() - started
        catalog.insert_batch_row(
            conn, **_batch_row(plan, data, batch_id, attempt, "Succeeded", started, elapsed,
                               extract_seconds, staged, load.rows_affected),
        )
        # One read of the work file for all warnings: this runs inside the load transaction.
        lines = lines_of(staged.path, plan.spec,
                         [i.line_number for i in load.warnings if i.line_number is not None])
        for issue in load.warnings:
            catalog.insert_error(
                conn, database=plan.database, name=plan.name, error_type="Warning",
                code=issue.code, message=issue.message, kind="Load",
                line=None if issue.line_number is None else lines.get(issue.line_number),
                line_number=issue.line_number, batch_id=batch_id,
                partition=data.partition, start=data.start, end=data.end,
            )
        conn.commit()
        result.outcome = Outcome.COMMITTED
        result.rows = load.rows_affected
        result.warnings = load.warnings
        return result
    except BatchPartitionError as exc:
        _safe_rollback(conn)
        result.error = exc
        _record_failure(conn, plan, data, batch_id, attempt, started, extract_seconds, staged, exc)
        return result
    except pymysql.MySQLError as exc:  # deadlock, lock wait timeout, lost connection...
        _safe_rollback(conn)
        args: tuple[Any, ...] = tuple(exc.args)
        error = _error(LoadError, plan, data, f"database error while committing: {exc}",
                       code=args[0] if args and isinstance(args[0], int) else None)
        result.error = error
        _record_failure(conn, plan, data, batch_id, attempt, started, extract_seconds, staged,
                        error)
        return result
    finally:
        if staged is not None:
            for path in (staged.path, staged.path.with_name(staged.path.name + ".kept")):
                path.unlink(missing_ok=True)


def _batch_row(
    plan: PipelinePlan, data: PartitionData, batch_id: int, attempt: int, state: str,
    started: float, elapsed: float, extract_seconds: float, staged: StagedInput | None,
    rows: int | None,
) -> dict[str, Any]:
    transformed = None
    if staged is not None and staged.path.exists():
        transformed = staged.path.stat().st_size
    return {
        "DATABASE_NAME": plan.database,
        "PIPELINE_NAME": plan.name,
        "BATCH_ID": batch_id,
        "BATCH_STATE": state,
        "BATCH_ROWS_WRITTEN": rows,
        "BATCH_TIME": elapsed + extract_seconds,
        "BATCH_START_UNIX_TIMESTAMP": started - extract_seconds,
        "BATCH_PARTITION_STATE": state,
        "BATCH_PARTITION_PARSED_ROWS": rows,
        "BATCH_SOURCE_PARTITION_ID": str(data.partition),
        "BATCH_EARLIEST_OFFSET": data.start,
        "BATCH_LATEST_OFFSET": data.end,
        "BATCH_PARTITION_TIME": elapsed,
        "BATCH_PARTITION_EXTRACTED_BYTES": data.size_bytes,
        "BATCH_PARTITION_TRANSFORMED_BYTES": transformed if plan.transform else None,
        "BATCH_PARTITION_EXTRACTOR_WAIT_TIME": extract_seconds,
        "BATCH_PARTITION_TRANSFORM_WAIT_TIME": staged.transform_seconds if staged else None,
        "BATCH_PARTITION_MESSAGES": len(data.messages),
        "ATTEMPT": attempt,
    }


def _safe_rollback(conn: Any) -> None:
    try:
        conn.rollback()
    except Exception:  # noqa: BLE001 - the connection may be gone; the server rolls back then
        log.debug("rollback failed", exc_info=True)


def record_error(
    conn: Any, plan: PipelinePlan, exc: BatchPartitionError, *, batch_id: int | None,
    error_type: str = "Error",
) -> None:
    catalog.insert_error(
        conn, database=plan.database, name=plan.name, error_type=error_type, code=exc.code,
        message=exc.describe(), kind=exc.kind, stderr=exc.stderr, line=exc.line,
        line_number=exc.line_number, batch_id=batch_id, partition=exc.partition,
        start=exc.start, end=exc.end,
    )


def _record_failure(
    conn: Any, plan: PipelinePlan, data: PartitionData, batch_id: int, attempt: int,
    started: float, extract_seconds: float, staged: StagedInput | None,
    exc: BatchPartitionError,
) -> None:
    """One Error row and one Failed batch row per failed attempt, committed on their own."""
    try:
        conn.begin()
        record_error(conn, plan, exc, batch_id=batch_id)
        catalog.insert_batch_row(
            conn, **_batch_row(plan, data, batch_id, attempt, "Failed", started,
                               time.time() - started, extract_seconds, staged, None),
        )
        conn.commit()
    except Exception:  # noqa: BLE001 - losing the error row must not lose the error itself
        _safe_rollback(conn)
        log.exception("could not record the failure of %s", exc.location)
    log.warning("batch partition failed (attempt %d): %s", attempt, exc)

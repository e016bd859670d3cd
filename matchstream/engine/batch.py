"""A batch, exactly once: every batch partition's range loads into the batch's one transaction,
which commits (or rolls back) as a whole, as SingleStore commits a batch.

The protocol (docs/engine.md, "Exactly once"), for a batch of partitions P1..Pn:

1. Each batch partition, in its own thread, writes its extracted messages to a work file:
   through the transform (one fresh process, framed stdin, stdout into the file) or, without a
   transform, as raw lines (:func:`run_batch_partition`).
2. Each runs ``LOAD DATA LOCAL INFILE`` inside the batch's one transaction
   (:class:`matchstream.engine.transaction.BatchTransaction`; the statements of P1..Pn take
   turns on its connection, :mod:`matchstream.engine.loader`). The first failure of any of them
   rolls the transaction back; the others stop at their next statement.
3. Once all n have loaded, still inside it (:func:`commit_batch`), the pipeline's registry row and
   the partitions' cursors are locked (``SELECT ... FOR UPDATE``): the pipeline must still be in
   the state the runner runs it in, each cursor must still equal its range's start, and the
   engine must still hold the catalog's engine lock. Otherwise STOP, DROP, ``SET OFFSETS`` or
   another engine got there first and everything is rolled back (the batch is *superseded*).
4. Every cursor moves to its range's end and every PIPELINES_BATCHES row is written.
5. COMMIT. A failure anywhere before it - transform exit, parse error, a killed engine - leaves
   every table and cursor exactly as they were, so the same batch is simply done again.

A failure is one of two kinds. The data's (a rejected line, a failing transform, an error of the
target table, or anything unexpected): the batch rolls back, and the failing batch partition gets
an error row and a failed attempt (:func:`record_failures`, counted by the runner). The
infrastructure's (:func:`is_infrastructure`: a lost or killed database session, a deadlock or
lock-wait timeout, a full disk): ``Outcome.RETRY``, no error row and no attempt, and the runner
backs off, since retrying the same batch later is all that can be done and skipping it would
lose it.

Because STOP updates the same registry row, a STOP that arrives during step 2 waits for the
commit of step 5 (the batch finishes) or, if it came first, makes step 3 roll back: a STOP never
leaves half a batch.

Without a transform, reading and loading overlap (a read followed by a load reaches only
``1/(1/read + 1/load)``, about 0.6 of the slower side's rate). The range then arrives through a
:class:`ChunkFeed` and steps 1-2 repeat per chunk inside the one transaction:

1. The runner's thread (the reader: it owns the extractor, which is not thread-safe) reads the
   first chunk, hands the feed to a batch thread, and reads the next chunk while this one loads.
2. The batch thread writes each chunk to its own work file and runs ``LOAD DATA`` for it; the
   transaction is opened before the first and stays open. Line numbers and offsets in warnings
   and error rows are the chunk's plus the lines of the chunks before, i.e. the numbers one
   file holding the whole range would give; each chunk's ``SAVEPOINT`` reload covers only it.
3. A rejected line, an extract error from the reader, or STOP seen by either side rolls back
   the whole transaction (nothing of the range stays) and the reader stops reading.
4. After the last chunk the batch partition is ``Outcome.LOADED``; steps 3-5 run once for the
   whole batch.

Memory: the reader takes one of two slots before reading a chunk and the batch thread frees it
when that chunk is loaded, so at most two chunks of a partition exist at a time.
"""

from __future__ import annotations

import bisect
import enum
import errno
import functools
import hashlib
import logging
import queue
import re
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql

from matchstream import faults
from matchstream.db import DatabaseUnreachable
from matchstream.ddl.ast import CreatePipeline
from matchstream.engine import catalog
from matchstream.engine.errors import (
    CODE_INTERNAL,
    CODE_TRANSFORM_START,
    CODE_TRANSFORM_TIMEOUT,
    BatchPartitionError,
    LoadError,
    TransformError,
)
from matchstream.engine.extractor import Message, PartitionData
from matchstream.engine.loader import (
    LoadResult,
    LoadSpec,
    RowIssue,
    RowRejected,
    lines_of,
    load_file,
)
from matchstream.engine.transaction import BatchAborted, BatchTransaction
from matchstream.engine.transform_runner import (
    DEFAULT_OUTPUT_MAX_BYTES,
    ResolvedTransform,
    TransformOutcome,
    run_transform,
)
from matchstream.engine.transform_stream import TransformAborted, TransformStream

__all__ = [
    "BatchCommit", "ChunkFeed", "Outcome", "PartitionResult", "PipelinePlan", "commit_batch",
    "fail_all", "pipeline_dir_name", "record_failures", "run_batch_partition", "stage_input",
]

log = logging.getLogger(__name__)


class Outcome(enum.Enum):
    LOADED = "loaded"  # in the batch's transaction, waiting for the batch commit
    COMMITTED = "committed"
    SUPERSEDED = "superseded"  # state or cursor changed under us: rolled back, not an error
    FAILED = "failed"  # the data's failure: an error row and an attempt
    RETRY = "retry"  # the infrastructure's failure: rolled back, no attempt, back off


# MariaDB errors that say nothing about the data: the server went away or is shutting down, the
# session was killed, the transaction lost a lock race, the server's disk is full.
_TRANSIENT_DB_CODES = frozenset({
    1021,  # ER_DISK_FULL
    1053,  # ER_SERVER_SHUTDOWN
    1114,  # ER_RECORD_FILE_FULL
    1205,  # ER_LOCK_WAIT_TIMEOUT
    1213,  # ER_LOCK_DEADLOCK
    1317,  # ER_QUERY_INTERRUPTED (KILL QUERY)
    1927,  # ER_CONNECTION_KILLED
    2002, 2003, 2006, 2013, 2055,  # the client's: cannot connect, server gone, lost connection
    4031,  # ER_CLIENT_INTERACTION_TIMEOUT
})
_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_infrastructure(exc: BaseException) -> bool:
    """True for a failure the range is not to blame for: retry it later, never count or skip it.

    >>> is_infrastructure(pymysql.err.OperationalError(2013, "Lost connection"))
    True
    >>> is_infrastructure(pymysql.err.DataError(1264, "Out of range value"))
    False
    >>> is_infrastructure(OSError(errno.ENOSPC, "No space left on device"))
    True
    """
    if isinstance(exc, DatabaseUnreachable | pymysql.err.InterfaceError):
        return True
    if isinstance(exc, pymysql.MySQLError):
        code = exc.args[0] if exc.args else None
        return code in _TRANSIENT_DB_CODES or (
            isinstance(exc, pymysql.err.OperationalError) and not isinstance(code, int))
    if isinstance(exc, OSError):
        return exc.errno in _DISK_FULL_ERRNOS
    return False


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
    transform_output_max_bytes: int = DEFAULT_OUTPUT_MAX_BYTES  # EngineSettings' field
    # The session that must hold the catalog's engine lock for a commit (EngineSettings).
    engine_session: int | None = None

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
    loaded: _Loaded | None = None  # for the batch commit (LOADED) or the Failed row (FAILED)


@dataclass
class StagedInput:
    """The work file ``LOAD DATA`` reads, and how its lines map back to offsets."""

    path: Path
    transformed: bool
    stderr: str = ""
    transform_seconds: float = 0.0
    # Without a transform: line number (1-based) where each message starts, for error rows
    # (a range when every message is one line), and the number of lines in the file.
    message_first_lines: Sequence[int] = field(default_factory=list)
    line_count: int = 0

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


# What the local engine tells a transform run by TEST PIPELINE, so that one with side effects
# (train.py) can leave them out. SingleStore sets nothing of the kind (docs/model.md).
DRY_RUN_ENV = {"MATCHSTREAM_DRY_RUN": "1"}


def stage_input(
    plan: PipelinePlan, data: PartitionData, *, cancelled: threading.Event | None = None,
    dry_run: bool = False,
) -> StagedInput:
    """Step 1: write what ``LOAD DATA`` will read; raises TransformError if the transform fails."""
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, deleted by the caller
        prefix=work_file_prefix(plan.name, data.partition, data.start), suffix=".load",
        dir=plan.work_dir, delete=False,
    )
    path = Path(handle.name)
    try:
        return _stage(plan, data, handle, path, cancelled=cancelled, dry_run=dry_run)
    except BaseException:
        path.unlink(missing_ok=True)  # the caller deletes the file only once it has it
        raise


def _stage(plan: PipelinePlan, data: PartitionData, handle: Any, path: Path, *,
           cancelled: threading.Event | None, dry_run: bool) -> StagedInput:
    if plan.transform is not None:
        with handle:
            outcome = run_transform(
                plan.transform, [m.value for m in data.messages], handle,
                timeout_s=plan.transform_timeout_s, cancelled=cancelled,
                max_output_bytes=plan.transform_output_max_bytes,
                extra_env=DRY_RUN_ENV if dry_run else None,
            )
        if not outcome.ok:
            raise _transform_error(plan, data, outcome)
        return StagedInput(path, True, outcome.stderr_tail, outcome.seconds)
    # Each message is one input line: a message not ending in the terminator gets one. Built
    # as one bytes object and written at once (a write per message cost more than LOAD DATA).
    terminator = plan.spec.lines_terminated_by.encode()
    values = plan.spec.message_lines(data.messages)
    blob = b"".join(values)
    with handle:
        handle.write(blob)
    total = blob.count(terminator)
    firsts: Sequence[int]
    if total == len(values):  # the usual case: message i is line i + 1
        firsts = range(1, total + 1)
    else:  # some message holds several lines
        counts = [0, *(v.count(terminator) for v in values)]
        firsts = [1 + n for n in _running_sum(counts[:-1])]
    return StagedInput(path, False, message_first_lines=firsts, line_count=total)


_UNSAFE_IN_A_FILE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


def work_file_prefix(pipeline: str, partition: int, start: int) -> str:
    """The start of a work file's name: a pipeline name may hold any character (`x/../y` is a
    valid quoted identifier), and none but letters, digits, ``_ . -`` may reach a path.

    >>> work_file_prefix("x/../y", 0, 42)
    'x_.._y-p0-42-'
    """
    return f"{_UNSAFE_IN_A_FILE_NAME.sub('_', pipeline)}-p{partition}-{start}-"


def pipeline_dir_name(database: str, pipeline: str) -> str:
    """The directory a pipeline's unpacked transform lives in, under the engine's unpack dir:
    the names with what a path would read replaced, plus a digest of the exact names, so two
    pipelines whose names differ only there never share one.

    >>> pipeline_dir_name("db", "x/../y")
    'db.x_.._y-0f3c2069'
    """
    digest = hashlib.sha256(f"{database}\0{pipeline}".encode()).hexdigest()[:8]
    return (f"{_UNSAFE_IN_A_FILE_NAME.sub('_', database)}."
            f"{_UNSAFE_IN_A_FILE_NAME.sub('_', pipeline)}-{digest}")


def _transform_error(plan: PipelinePlan, data: PartitionData,
                     outcome: TransformOutcome) -> BatchPartitionError:
    if outcome.timed_out:
        code = CODE_TRANSFORM_TIMEOUT
    elif outcome.returncode == 127 and "cannot start" in outcome.stderr_tail:
        code = CODE_TRANSFORM_START
    else:
        code = TransformError.code
    return _error(TransformError, plan, data, outcome.failure_reason(plan.transform_timeout_s),
                  code=code, stderr=outcome.stderr_tail)


@dataclass
class _Progress:
    """What a batch partition has consumed and produced so far (for its PIPELINES_BATCHES row)."""

    end: int  # the end of the messages read so far
    messages: int = 0
    size: int = 0
    transformed_bytes: int | None = None
    transform_seconds: float | None = None
    last: Message | None = None  # the last message read: the history mark the cursor keeps

    def count(self, chunk: PartitionData) -> None:
        self.messages += len(chunk.messages)
        self.size += chunk.size_bytes
        if chunk.messages:
            self.last = chunk.messages[-1]


def _stages(plan: PipelinePlan, whole: PartitionData, chunks: Iterable[PartitionData],
            cancelled: threading.Event | None,
            progress: _Progress) -> Iterator[tuple[PartitionData, StagedInput]]:
    """Step 1, as work files for step 2: ``(the messages it came from, the file)``."""
    if plan.transform is not None:
        yield from _transformed(plan, whole, chunks, cancelled, progress)
        return
    for chunk in chunks:
        progress.count(chunk)
        yield chunk, stage_input(plan, chunk, cancelled=cancelled)
        progress.end = chunk.end


def _transformed(plan: PipelinePlan, whole: PartitionData, chunks: Iterable[PartitionData],
                 cancelled: threading.Event | None,
                 progress: _Progress) -> Iterator[tuple[PartitionData, StagedInput]]:
    """Step 1 with a transform: the range streams into it chunk by chunk as it is read, and its
    output comes back as work files while it runs (:mod:`matchstream.engine.transform_stream`).
    Nothing may commit before it has exited with status 0."""
    assert plan.transform is not None

    def payloads() -> Iterator[list[bytes]]:  # runs on the stream's feeder thread
        for chunk in chunks:
            progress.count(chunk)
            yield [m.value for m in chunk.messages]
            progress.end = chunk.end

    spec = plan.spec
    stream = TransformStream(
        plan.transform, work_dir=plan.work_dir,
        prefix=work_file_prefix(plan.name, whole.partition, whole.start),
        terminator=spec.lines_terminated_by.encode(), escape=spec.escaped_by.encode(),
        splittable=not spec.ignore_lines and not spec.enclosed_by,
        timeout_s=plan.transform_timeout_s, cancelled=cancelled,
        max_output_bytes=plan.transform_output_max_bytes)
    try:
        outcome = stream.start(payloads())
        if outcome is None:
            progress.transformed_bytes = 0
            try:
                for output in stream.outputs():
                    progress.transformed_bytes += output.path.stat().st_size
                    yield whole, StagedInput(output.path, True, line_count=output.lines)
            except TransformAborted:
                pass  # finish() says why: timeout or STOP
            outcome = stream.finish()
        if isinstance(stream.source_error, _Cancelled | BatchPartitionError):
            raise stream.source_error  # STOP seen by the reader, or an extract error
        if outcome.cancelled:
            raise _Cancelled
        if not outcome.ok:
            raise _transform_error(plan, whole, outcome)
        progress.transform_seconds = outcome.seconds
        faults.hit("engine.after_transform")
    finally:
        stream.close()


def _running_sum(numbers: Iterable[int]) -> Iterator[int]:
    total = 0
    for number in numbers:
        total += number
        yield total


class _Cancelled(Exception):  # noqa: N818 - internal signal: STOP seen by the reader
    pass


_DONE = object()  # the reader has handed over the last chunk
_CANCELLED = object()  # the reader saw STOP (or gave up): roll back, not an error


class ChunkFeed:
    """One batch partition's range, handed from the reader to the batch thread chunk by chunk.

    ``range`` holds the planned bounds (no messages): error rows name them, as for an unchunked
    range, and a retry reads exactly them again.
    """

    SLOTS = 2  # chunks in memory per partition: one loading, one read ahead

    def __init__(self, partition: int, start: int, end: int, first: PartitionData) -> None:
        self.range = PartitionData(partition, start, end)
        self._items: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._slots = threading.Semaphore(self.SLOTS)
        self._closed = False
        self.abandoned = threading.Event()  # the batch thread is done (failed or finished)
        self._slots.acquire()
        self._items.put(first)

    # -- the reader's side ---------------------------------------------------------------
    def reserve(self, stop: threading.Event) -> bool:
        """Wait for a free slot before reading the next chunk; False: stop reading."""
        while not self._slots.acquire(timeout=0.1):
            if self.abandoned.is_set() or stop.is_set():
                return False
        return not (self.abandoned.is_set() or stop.is_set())

    def put(self, chunk: PartitionData) -> None:
        self._items.put(chunk)

    def close(self, item: Any = _DONE) -> None:
        """The last item: ``_DONE``, ``_CANCELLED`` or the BatchPartitionError to raise.
        Only the first call counts, so a ``finally: close(_CANCELLED)`` is always safe."""
        if not self._closed:
            self._closed = True
            self._items.put(item)

    def cancel(self) -> None:
        self.close(_CANCELLED)

    # -- the batch thread's side ---------------------------------------------------------
    def chunks(self) -> Iterator[PartitionData]:
        while True:
            item = self._items.get()
            if item is _DONE:
                return
            if item is _CANCELLED:
                raise _Cancelled
            if isinstance(item, BaseException):
                raise item
            yield item
            self._slots.release()  # that chunk is loaded: the reader may read one more


def _guard(conn: Any, plan: PipelinePlan, ranges: Sequence[PartitionData]) -> str | None:
    """Step 3: None if these ranges (one batch) may commit, else why not."""
    row = catalog.get_pipeline(conn, plan.database, plan.name, for_update=True)
    if row is None or row.pipeline_id != plan.pipeline_id:
        return "the pipeline was dropped"
    if row.state != plan.run_state:
        return f"the pipeline is now {row.state}"
    cursors = catalog.get_cursors(conn, plan.database, plan.name, for_update=True)
    for data in ranges:
        current = cursors.get(data.partition)
        if current is None or current.cursor != data.start:
            moved = None if current is None else current.cursor
            return (f"the cursor of partition {data.partition} moved to {moved} (SET OFFSETS "
                    "or another engine)")
    if plan.engine_session is not None and catalog.engine_session(conn) != plan.engine_session:
        return "this engine no longer holds the catalog's engine lock"
    return None


_ROW_RE = re.compile(r"\b([Rr]ow )(\d+)\b")


def _shifted(issue: RowIssue, lines_before: int) -> RowIssue:
    """A chunk's warning numbered as in the whole range (its line number and MariaDB's "Row N"
    text); warnings without a line (WHERE's copy step) are left alone."""
    if not lines_before or issue.line_number is None:
        return issue
    message = _ROW_RE.sub(lambda m: m.group(1) + str(int(m.group(2)) + lines_before),
                          issue.message, count=1)
    return RowIssue(issue.code, message, issue.line_number + lines_before)


def _rejected_error(
    plan: PipelinePlan, whole: PartitionData, data: PartitionData, staged: StagedInput,
    exc: RowRejected, lines_before: int = 0,
) -> BatchPartitionError:
    """A rejected line as a LoadError: for Kafka without a transform the "line" is the whole
    message (as SingleStore reports it) and the message names its offset. ``data`` is the
    chunk that ``staged`` holds, ``whole`` the range the error row names."""
    issue = exc.issue
    line = None
    reason = _shifted(issue, lines_before).message
    if issue.line_number is not None:
        index = staged.message_of_line(data, issue.line_number)
        if index is not None:
            line = data.messages[index].value
            reason += f" (message at offset {data.messages[index].offset})"
        else:
            line = lines_of(staged.path, plan.spec, [issue.line_number]).get(issue.line_number)
    number = None if issue.line_number is None else issue.line_number + lines_before
    return _error(LoadError, plan, whole, reason, code=issue.code or None, line=line,
                  line_number=number, stderr=staged.stderr)


def _remove(staged: StagedInput | None) -> None:
    if staged is not None:
        for path in (staged.path, staged.path.with_name(staged.path.name + ".kept")):
            path.unlink(missing_ok=True)


@dataclass
class _Loaded:
    """What a batch partition loaded into the batch's transaction, for the batch commit."""

    done: PartitionData  # the range loaded (no messages)
    progress: _Progress
    rows: int
    warnings: list[tuple[RowIssue, bytes | None]]  # accepted, numbered in the whole range
    attempt: int
    started: float
    extract_seconds: float


def run_batch_partition(
    txn: BatchTransaction,
    plan: PipelinePlan,
    data: PartitionData | ChunkFeed,
    *,
    batch_id: int,
    attempt: int,
    extract_seconds: float = 0.0,
    cancelled: threading.Event | None = None,
) -> PartitionResult:
    """Steps 1-2 of the module docstring for one batch partition; never raises for bad data.

    ``data`` is the whole range, or a :class:`ChunkFeed` delivering it (steps 1-2 per chunk).
    Success is ``Outcome.LOADED``: the rows are in ``txn``, which :func:`commit_batch` commits
    with every partition's cursor. Any failure aborts ``txn`` (the whole batch), so the sibling
    partitions stop at their next statement; a failure of the data's is returned as
    ``Outcome.FAILED`` with its error, to be recorded by :func:`record_failures`.
    """
    started = time.time()
    feed = data if isinstance(data, ChunkFeed) else None
    whole = data.range if isinstance(data, ChunkFeed) else data  # the bounds error rows name
    result = PartitionResult(whole.partition, whole.start, whole.end, Outcome.FAILED)
    staged: StagedInput | None = None
    progress = _Progress(whole.start)
    rows = lines_before = 0
    warnings: list[tuple[RowIssue, bytes | None]] = []
    try:
        chunks = feed.chunks() if feed is not None else [whole]
        for chunk, staged in _stages(plan, whole, chunks, cancelled, progress):
            if cancelled is not None and cancelled.is_set():
                raise _Cancelled
            load = txn.run(functools.partial(
                _load, plan=plan, whole=whole, chunk=chunk, staged=staged,
                lines_before=lines_before, batch_id=batch_id))
            # The file's accepted warnings with their lines, read now: the file goes next.
            lines = lines_of(staged.path, plan.spec,
                             [i.line_number for i in load.warnings if i.line_number is not None])
            warnings += [(_shifted(i, lines_before),
                          None if i.line_number is None else lines.get(i.line_number))
                         for i in load.warnings]
            rows += load.rows_affected
            lines_before += staged.line_count
            _remove(staged)
            staged = None
        if cancelled is not None and cancelled.is_set():
            raise _Cancelled
        done = PartitionData(whole.partition, whole.start, progress.end)
        result.outcome = Outcome.LOADED
        result.end, result.rows = done.end, rows
        result.warnings = [issue for issue, _ in warnings]
        result.loaded = _Loaded(done, progress, rows, warnings, attempt, started, extract_seconds)
        return result
    except (_Cancelled, BatchAborted):  # STOP, or a sibling failed: nothing of the batch stays
        txn.abort()
        result.outcome = Outcome.SUPERSEDED
        return result
    except BatchPartitionError as exc:
        txn.abort()
        result.error = exc
        result.loaded = _Loaded(whole, progress, 0, [], attempt, started, extract_seconds)
        return result
    except Exception as exc:  # noqa: BLE001 - every failure is an outcome, none escapes
        infrastructure = is_infrastructure(exc)
        txn.abort(broken=infrastructure and not isinstance(exc, OSError))
        args: tuple[Any, ...] = tuple(exc.args)
        code = args[0] if args and isinstance(args[0], int) else None
        if infrastructure:
            result.outcome = Outcome.RETRY
            result.error = _error(LoadError, plan, whole, f"{type(exc).__name__}: {exc}",
                                  code=code if isinstance(exc, pymysql.MySQLError) else None)
            log.warning("%s %s[%d]@%d..%d rolled back, to be retried: %s", plan.name,
                        plan.topic, whole.partition, whole.start, whole.end, exc)
            return result
        what = "database error" if isinstance(exc, pymysql.MySQLError) else "internal error"
        error = _error(LoadError, plan, whole, f"{what}: {type(exc).__name__}: {exc}",
                       code=code if isinstance(exc, pymysql.MySQLError) else CODE_INTERNAL)
        if not isinstance(exc, pymysql.MySQLError):
            log.exception("%s: unexpected failure of %s", plan.name, error.location)
        result.error = error
        result.loaded = _Loaded(whole, progress, 0, [], attempt, started, extract_seconds)
        return result
    finally:
        if feed is not None:
            feed.abandoned.set()  # the reader stops at its next chunk
        _remove(staged)


@dataclass
class BatchCommit:
    """How :func:`commit_batch` ended: ``COMMITTED``, ``SUPERSEDED`` (``reason``), ``RETRY``
    (the infrastructure's ``error``) or ``FAILED`` (``error``, the whole batch's failure)."""

    outcome: Outcome
    reason: str = ""
    error: Exception | None = None


def commit_batch(
    txn: BatchTransaction, plan: PipelinePlan, results: Sequence[PartitionResult], *,
    batch_id: int, cancelled: threading.Event | None = None,
) -> BatchCommit:
    """Steps 3-5 of the module docstring, once for the whole batch: every result is LOADED."""
    loaded = [r.loaded for r in results if r.loaded is not None]
    try:
        return txn.run(lambda conn: _commit(conn, txn, plan, loaded, batch_id, cancelled))
    except BatchAborted:
        return BatchCommit(Outcome.SUPERSEDED, "the batch was aborted")
    except Exception as exc:  # noqa: BLE001 - every failure is an outcome, none escapes
        infrastructure = is_infrastructure(exc)
        txn.abort(broken=infrastructure and not isinstance(exc, OSError))
        if infrastructure:
            log.warning("%s: batch %d rolled back at its commit, to be retried: %s", plan.name,
                        batch_id, exc)
            return BatchCommit(Outcome.RETRY, error=exc)
        if not isinstance(exc, pymysql.MySQLError):
            log.exception("%s: unexpected failure committing batch %d", plan.name, batch_id)
        return BatchCommit(Outcome.FAILED, error=exc)


def _commit(conn: Any, txn: BatchTransaction, plan: PipelinePlan, loaded: Sequence[_Loaded],
            batch_id: int, cancelled: threading.Event | None) -> BatchCommit:
    why_not = _guard(conn, plan, [item.done for item in loaded])
    if why_not is None and cancelled is not None and cancelled.is_set():
        why_not = "the engine is stopping"
    if why_not is not None:
        txn.abort()
        log.info("%s batch %d (%s) rolled back: %s", plan.name, batch_id,
                 ", ".join(f"{plan.topic}[{i.done.partition}]@{i.done.start}..{i.done.end}"
                           for i in loaded), why_not)
        return BatchCommit(Outcome.SUPERSEDED, why_not)
    faults.hit("engine.after_guard")
    for item in loaded:
        done, last = item.done, item.progress.last
        catalog.put_cursor(
            conn, plan.database, plan.name, done.partition, cursor=done.end,
            history=last.history_mark() if last is not None and last.offset == done.end - 1
            else None)
        elapsed = time.time() - item.started
        catalog.insert_batch_row(
            conn, **_batch_row(plan, done, batch_id, item.attempt, "Succeeded", item.started,
                               elapsed, item.extract_seconds, item.progress, item.rows),
        )
        for issue, line in item.warnings:
            catalog.insert_error(
                conn, database=plan.database, name=plan.name, error_type="Warning",
                code=issue.code, message=issue.message, kind="Load", line=line,
                line_number=issue.line_number, batch_id=batch_id,
                partition=done.partition, start=done.start, end=done.end,
            )
    faults.hit("engine.before_commit")
    txn.commit()
    return BatchCommit(Outcome.COMMITTED)


def _load(
    conn: Any, plan: PipelinePlan, whole: PartitionData, chunk: PartitionData,
    staged: StagedInput, lines_before: int, batch_id: int,
) -> LoadResult:
    """Step 2 for one work file, inside the open transaction; a rejected line raises."""
    try:
        faults.hit("engine.before_load")
        result = load_file(conn, staged.path, plan.spec, batch_id=batch_id,
                           partition=whole.partition)
        faults.hit("engine.after_load")  # its "error" action fails the load, as a bad row would
        return result
    except RowRejected as exc:
        raise _rejected_error(plan, whole, chunk, staged, exc, lines_before) from None
    except Exception as exc:  # a MariaDB error for the whole statement (no such table...)
        if is_infrastructure(exc):
            raise  # not the data's fault: run_batch_partition makes it a RETRY
        load_args: tuple[Any, ...] = tuple(exc.args)
        code = load_args[0] if load_args and isinstance(load_args[0], int) else None
        message = str(load_args[1]) if len(load_args) > 1 else str(exc)
        raise _error(LoadError, plan, whole, message, code=code,
                     stderr=staged.stderr) from exc


def _batch_row(
    plan: PipelinePlan, data: PartitionData, batch_id: int, attempt: int, state: str,
    started: float, elapsed: float, extract_seconds: float, progress: _Progress,
    rows: int | None,
) -> dict[str, Any]:
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
        "BATCH_PARTITION_EXTRACTED_BYTES": progress.size,
        "BATCH_PARTITION_TRANSFORMED_BYTES": progress.transformed_bytes,
        "BATCH_PARTITION_EXTRACTOR_WAIT_TIME": extract_seconds,
        "BATCH_PARTITION_TRANSFORM_WAIT_TIME": (progress.transform_seconds if plan.transform
                                                else 0.0),
        "BATCH_PARTITION_MESSAGES": progress.messages,
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


def fail_all(plan: PipelinePlan, results: Sequence[PartitionResult], exc: Exception) -> None:
    """The batch commit failed for the data's reason: every batch partition of it failed."""
    args: tuple[Any, ...] = tuple(exc.args)
    code = args[0] if args and isinstance(args[0], int) else None
    what = "database error" if isinstance(exc, pymysql.MySQLError) else "internal error"
    for result in results:
        result.outcome = Outcome.FAILED
        result.error = LoadError(
            f"{what} committing the batch: {type(exc).__name__}: {exc}", pipeline=plan.name,
            topic=plan.topic, partition=result.partition, start=result.start, end=result.end,
            code=code if isinstance(exc, pymysql.MySQLError) else CODE_INTERNAL)


def record_failures(
    conn: Any, plan: PipelinePlan, results: Sequence[PartitionResult], *, batch_id: int,
) -> None:
    """One Error row and one Failed batch row per failed batch partition of a failed attempt of
    the batch, committed on their own (after the batch's rollback)."""
    failed = [r for r in results if r.outcome is Outcome.FAILED and r.error is not None]
    if not failed:
        return
    try:
        conn.begin()
        for result in failed:
            assert result.error is not None
            record_error(conn, plan, result.error, batch_id=batch_id)
            item = result.loaded
            if item is not None:
                range_ = PartitionData(result.partition, result.start, result.end)
                catalog.insert_batch_row(
                    conn, **_batch_row(plan, range_, batch_id, item.attempt, "Failed",
                                       item.started, time.time() - item.started,
                                       item.extract_seconds, item.progress, None),
                )
        conn.commit()
    except Exception:  # noqa: BLE001 - losing the error row must not lose the error itself
        _safe_rollback(conn)
        log.exception("could not record the failures of batch %d", batch_id)
    for result in failed:
        attempt = result.loaded.attempt if result.loaded is not None else 0
        log.warning("batch partition failed (attempt %d): %s", attempt, result.error)

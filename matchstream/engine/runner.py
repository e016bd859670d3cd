"""Running one pipeline: batches back to back while there is data, then BATCH_INTERVAL naps.

One round (a *batch*), as SingleStore schedules it (docs/singlestore-pipelines.md §5):

1. Discover the topic's partitions (new ones get a cursor at EARLIEST, never overwriting one
   written meanwhile) and their true ends. A cursor beyond the end, or a message before the
   cursor that is not the one loaded (its *history mark*, kept with the cursor, differs: the
   broker was restarted and refilled, or the topic re-created), means the partition's history
   changed: the pipeline goes to ``Error`` before anything is loaded, with a message saying to
   ``SET OFFSETS``; retrying could not help. Every read of a range starts one message early,
   at the mark, so each batch checks it at the cost of one message in a fetch that happens
   anyway: a broker restart is not always seen as a failure (librdkafka rides it out).
2. Pick up to MAX_PARTITIONS_PER_BATCH partitions with data (round robin when there are more).
   None: the round is idle and the runner sleeps BATCH_INTERVAL ms.
3. Read each partition's range ``[cursor, min(end, cursor + MAX_OFFSETS_PER_BATCH_PARTITION))``;
   a range that failed before is read again with exactly the same bounds. With a transform the
   range is recorded (``batch_plans``) before the transform runs, so the same holds after a
   STOP or an engine crash: a transform with side effects sees the same input every time.
4. Run the batch partitions in parallel, all in the batch's one transaction, and commit it once
   they have all loaded (:mod:`matchstream.engine.batch`): the batch commits or rolls back as
   a whole. The first failure of one aborts the transaction and stops the others.
5. A range that failed for the data's sake counts one attempt; the whole batch is retried with
   the same ranges after the retry policy's wait (``settings.retry_policy``: SingleStore 9.x's
   exponential back-off from the batch interval, or RETRY_OPTIONS). After ``max_retries``
   attempts: STOP_ON_ERROR ON puts the pipeline in ``Error`` and ends the runner; OFF skips that
   range (its cursor moves past it and SKIPPED_BATCH_PARTITIONS grows by one) and the next
   batch loads the other partitions' ranges of the failed one. A commit resets the counts.
6. An infrastructure failure (broker unreachable or stalled, a lost database session, a
   deadlock, a full disk: :func:`matchstream.engine.batch.is_infrastructure`) rolls the batch
   back too, counts no attempt and never skips: the runner backs off (``retry_delay_s``
   doubling per failure in a row, up to ``max_backoff_s``) and tries again; the first failure
   of a streak leaves a ``Warning`` row.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Generator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matchstream.config import Config
from matchstream.ddl.ast import CreatePipeline
from matchstream.engine import catalog
from matchstream.engine.batch import (
    ChunkFeed,
    Outcome,
    PartitionResult,
    PipelinePlan,
    commit_batch,
    fail_all,
    pipeline_dir_name,
    record_error,
    record_failures,
    run_batch_partition,
)
from matchstream.engine.catalog import PipelineRow, State
from matchstream.engine.errors import (
    BatchPartitionError,
    CursorBeyondEndError,
    EngineError,
    ExtractError,
    LoadError,
)
from matchstream.engine.extractor import (
    Extractor,
    KafkaStalled,
    KafkaUnreachable,
    PartitionData,
    Watermarks,
    client_options,
    pipeline_extractor,
)
from matchstream.engine.loader import LoadSpec
from matchstream.engine.settings import (
    DATABASE_ERRORS,
    EngineSettings,
    open_connection,
    retry_policy,
)
from matchstream.engine.transaction import AbortSignal, BatchTransaction
from matchstream.engine.transform_runner import resolve_transform

__all__ = ["PipelineRunner", "RunSummary", "build_plan"]

log = logging.getLogger(__name__)

# Messages per chunk fed to a transform (score.py scores blocks of 10,000).
TRANSFORM_CHUNK_MESSAGES = 10_000


@dataclass
class RunSummary:
    batches: int = 0
    rows: int = 0
    error: EngineError | None = None  # the error that ended the run (state Error / FOREGROUND)


@dataclass
class _Retry:
    end: int
    attempts: int = 0


@dataclass
class _Round:
    idle: bool = False
    # An infrastructure failure happened (step 6): back off, count nothing.
    infrastructure: BatchPartitionError | None = None
    # Nothing ran because of a failure (topic metadata, or every read of the round): not a
    # batch, so it does not use up START ... LIMIT n BATCHES, and the retry delay applies.
    failed: bool = False
    # Some reads failed while other batch partitions ran: a batch, followed by the retry delay.
    extract_failures: int = 0
    fatal: EngineError | None = None
    history_changed: CursorBeyondEndError | None = None  # step 1's check failed: state Error
    rows: int = 0
    results: list[PartitionResult] = field(default_factory=list)
    # The highest attempt number of a range that failed for the data's sake and is retried:
    # the runner waits the retry policy's delay for it before the next batch.
    failed_attempt: int = 0

    @property
    def committed(self) -> bool:
        return any(r.outcome is Outcome.COMMITTED for r in self.results)


def build_plan(
    row: PipelineRow, settings: EngineSettings, *, run_state: str
) -> PipelinePlan:
    stmt = row.statement()
    # CONFIG/CREDENTIALS were checked at CREATE/ALTER; checked again so a definition stored by
    # an older engine fails at START, not in the engine process.
    client_options(stmt.name, stmt.config_dict(), stmt.credentials_dict())
    transform = None
    if stmt.transform is not None:
        transform = resolve_transform(
            stmt.transform, sql_dir=Path(row.sql_dir),
            unpack_dir=settings.unpack_dir / pipeline_dir_name(row.database, row.name),
        )
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    return PipelinePlan(
        database=row.database, pipeline_id=row.pipeline_id, stmt=stmt,
        spec=LoadSpec.from_pipeline(stmt, row.database), transform=transform,
        run_state=run_state, transform_timeout_s=settings.transform_timeout_s,
        work_dir=settings.work_dir, engine_session=settings.engine_session,
        transform_output_max_bytes=settings.transform_output_max_bytes,
    )


class PipelineRunner:
    """Runs one pipeline until stopped, idle (foreground), out of batches or in Error."""

    def __init__(
        self, config: Config, row: PipelineRow, settings: EngineSettings, *,
        foreground: bool = False,
    ) -> None:
        self.config = config
        self.row = row
        self.settings = settings
        self.foreground = foreground
        self.run_state = State.FOREGROUND if foreground else State.RUNNING
        self.plan = build_plan(row, settings, run_state=self.run_state)
        self.retry = retry_policy(self.plan.stmt)
        self._retries: dict[tuple[int, int], _Retry] = {}
        self._rotation = 0
        self._known_marks: dict[int, Watermarks] = {}
        self._batches_since_trim = 0
        # partition -> (cursor, its history mark) as read in step 1, for the read's check.
        self._marks: dict[int, tuple[int, str | None]] = {}
        self._failures_in_a_row = 0  # infrastructure failures since the last good round

    @property
    def stmt(self) -> CreatePipeline:
        return self.plan.stmt

    def run(
        self, stop: threading.Event, *, limit_batches: int | None = None,
        stop_when_idle: bool = False,
    ) -> RunSummary:
        summary = RunSummary()
        parallel = self.stmt.max_partitions_per_batch or self.settings.max_parallel_partitions
        control = open_connection(self.config)
        pool: queue.Queue[Any] = queue.Queue()
        extractor = pipeline_extractor(
            self.stmt, client_id=f"matchstream-{self.plan.database}.{self.plan.name}")
        try:
            with ThreadPoolExecutor(max_workers=parallel,
                                    thread_name_prefix=f"bp-{self.plan.name}") as executor:
                while not stop.is_set():
                    round_ = self._round(control, extractor, executor, pool, parallel, stop)
                    if round_.fatal is not None:
                        summary.error = round_.fatal
                        break
                    if round_.infrastructure is not None:
                        self._back_off(control, round_.infrastructure, stop)
                        if round_.failed:
                            continue
                    elif round_.idle or round_.committed:
                        self._failures_in_a_row = 0
                    if round_.idle:
                        if stop_when_idle:
                            break
                        stop.wait(self.stmt.effective_batch_interval / 1000.0)
                        continue
                    if not round_.failed:
                        summary.batches += 1
                        summary.rows += round_.rows
                        self._trim_batches(control)
                        if limit_batches is not None and summary.batches >= limit_batches:
                            break
                    if round_.failed_attempt:
                        stop.wait(self.retry.delay_s(round_.failed_attempt))
        finally:
            extractor.close()
            _close(control)
            while not pool.empty():
                _close(pool.get_nowait())
        return summary

    # -- one round -------------------------------------------------------------------------
    def _round(
        self, control: Any, extractor: Extractor, executor: ThreadPoolExecutor,
        pool: queue.Queue[Any], parallel: int, stop: threading.Event,
    ) -> _Round:
        plan = self.plan
        try:
            ready = self._ready_partitions(control, extractor)
        except CursorBeyondEndError as exc:
            return _Round(fatal=self._fail_pipeline(control, exc, batch_id=None))
        except DATABASE_ERRORS:
            raise  # the catalog, not the broker, failed: the engine restarts this runner
        except Exception as exc:  # noqa: BLE001 - a broker hiccup: back off (step 6)
            error = ExtractError(f"cannot read topic metadata: {exc}", pipeline=plan.name,
                                 topic=plan.topic, partition=-1, start=-1, end=-1)
            return _Round(failed=True, infrastructure=error)
        if not ready:
            return _Round(idle=True)
        if len(ready) > parallel:
            start = self._rotation % len(ready)
            ready = (ready + ready)[start : start + parallel]
            self._rotation += parallel
        batch_id = catalog.next_batch_id(control, plan.pipeline_id)
        # With a transform, a range is planned once and kept: read again with the same end after
        # a failure, a STOP, or a crash of this engine (step 3).
        plans = catalog.get_plans(control, plan.database, plan.name) if plan.transform else {}
        control.commit()
        # Step 4: every batch partition loads into this one transaction; the first failure
        # aborts it, which stops the others.
        abort = AbortSignal(stop)
        txn = BatchTransaction(_pooled_connection(pool, self.config), abort)
        round_ = _Round()
        failures: list[PartitionResult] = []  # extract failures of the data's kind
        futures: list[Future[PartitionResult]] = []
        try:
            for partition, cursor, end in ready:
                if abort.is_set():
                    break  # a batch partition already failed (or STOP): the batch is lost
                outcome = self._start_partition(
                    control, extractor, executor, txn, partition, cursor, end, plans,
                    batch_id, abort, stop)
                if isinstance(outcome, Future):
                    futures.append(outcome)
                    continue
                txn.abort()
                round_.extract_failures += 1
                if isinstance(outcome, CursorBeyondEndError):  # the partition's history changed
                    round_.history_changed = outcome
                elif outcome.outcome is Outcome.RETRY:
                    round_.infrastructure = outcome.error
                else:
                    failures.append(outcome)
                break
            round_.results = [future.result() for future in futures]
        finally:
            if not all(f.done() for f in futures):  # only after an unexpected exception above
                txn.abort()
                wait(futures)
        try:
            self._settle(control, txn, round_, failures, batch_id, stop)
        finally:
            txn.abort()  # a no-op after the commit; never hand back an open transaction
            if txn.broken:
                _close(txn.conn)
            else:
                pool.put(txn.conn)
        # No batch partition ran: not a batch (LIMIT n BATCHES does not count it).
        round_.failed = not futures and round_.history_changed is None
        return round_

    def _start_partition(
        self, control: Any, extractor: Extractor, executor: ThreadPoolExecutor,
        txn: BatchTransaction, partition: int, cursor: int, end: int,
        plans: dict[int, tuple[int, int]], batch_id: int, abort: AbortSignal,
        stop: threading.Event,
    ) -> Future[PartitionResult] | PartitionResult | CursorBeyondEndError:
        """Step 3 for one partition: read the range's first chunk and hand the batch partition
        to a thread (returns its future), or why it could not be read: the history changed (the
        CursorBeyondEndError), or a read failure as a FAILED (the data's) or RETRY result."""
        plan = self.plan
        # The range is read in chunks that load (or stream into the transform) while the next
        # is read (batch.ChunkFeed). Without a transform, IGNORE n LINES applies to the start of
        # the range only, so such a pipeline keeps one chunk (each LOAD DATA would skip n lines
        # again); with one, the transform's output is what is loaded and cut (or not).
        chunked = plan.transform is not None or not plan.spec.ignore_lines
        # A transform starts on the first chunk while the next is read: smaller chunks let it
        # start sooner; without one each chunk is a LOAD DATA, whose cost wants them larger.
        chunk_messages = self.settings.chunk_messages
        if plan.transform is not None:
            chunk_messages = min(chunk_messages, TRANSFORM_CHUNK_MESSAGES)
        key = (partition, cursor)
        retry = self._retries.get(key)
        planned = plans.get(partition)
        if retry is None and planned is not None and planned[0] == cursor \
                and cursor < planned[1] <= end:
            retry = self._retries.setdefault(key, _Retry(planned[1]))
        limit = self.stmt.effective_max_offsets_per_batch_partition
        if retry is not None:
            limit = retry.end - cursor
        end_hint = retry.end if retry else end
        started = time.monotonic()
        chunks: Generator[PartitionData, None, None] | None = None
        mark = self._mark_to_check(partition, cursor)
        early = 1 if mark is not None else 0  # step 1: read the mark's message too
        try:
            if chunked:
                chunks = extractor.read_chunks(
                    partition, cursor - early, limit + early, end_hint=end_hint,
                    chunk_messages=chunk_messages, chunk_bytes=self.settings.chunk_bytes,
                    uncounted=early)
                data = next(chunks)
            else:
                data = self._read_whole(extractor, partition, cursor, limit, end_hint, early)
            if mark is not None:
                data = self._past_mark(data, mark, cursor, end_hint)
        except CursorBeyondEndError as exc:  # the partition's history changed
            if chunks is not None:
                chunks.close()
            return exc
        except Exception as exc:  # noqa: BLE001 - any broker failure fails this range
            if chunks is not None:
                chunks.close()
            error = ExtractError(str(exc), pipeline=plan.name, topic=plan.topic,
                                 partition=partition, start=cursor, end=end_hint)
            infrastructure = isinstance(exc, KafkaUnreachable | KafkaStalled)  # step 6
            return PartitionResult(partition, cursor, end_hint,
                                   Outcome.RETRY if infrastructure else Outcome.FAILED,
                                   error=error)
        seconds = time.monotonic() - started
        attempt = self._retries.get(key, _Retry(data.end)).attempts + 1
        if plan.transform is not None and plans.get(partition) != (cursor, data.end):
            control.begin()
            catalog.put_plan(control, plan.database, plan.name, partition, cursor, data.end)
            control.commit()  # before the transform runs: its side effects see one range
        if chunks is None:
            return executor.submit(self._run_one, txn, data, batch_id, attempt, seconds, abort)
        feed = ChunkFeed(partition, cursor, min(cursor + limit, end_hint), data)
        future = executor.submit(self._run_one, txn, feed, batch_id, attempt, seconds, abort)
        self._read_rest(chunks, feed, abort)
        return future

    def _settle(
        self, control: Any, txn: BatchTransaction, round_: _Round,
        failures: list[PartitionResult], batch_id: int, stop: threading.Event,
    ) -> None:
        """Steps 5-6 once every batch partition has returned: commit the batch, or record why
        not and count the attempt of each batch partition that failed for the data's sake."""
        plan = self.plan
        results = round_.results
        if round_.history_changed is not None:
            txn.abort()
            round_.fatal = self._fail_pipeline(control, round_.history_changed,
                                               batch_id=batch_id)
            return
        loaded = bool(results) and all(r.outcome is Outcome.LOADED for r in results)
        if loaded and not round_.extract_failures:
            commit = commit_batch(txn, plan, results, batch_id=batch_id, cancelled=stop)
            if commit.outcome is Outcome.COMMITTED:
                for result in results:
                    result.outcome = Outcome.COMMITTED
                    round_.rows += result.rows
                    self._retries.pop((result.partition, result.start), None)
                return
            if commit.outcome is Outcome.RETRY:
                round_.infrastructure = _as_partition_error(plan, results[0], commit.error)
                return
            if commit.outcome is Outcome.FAILED and commit.error is not None:
                fail_all(plan, results, commit.error)
            else:  # SUPERSEDED: STOP, DROP, SET OFFSETS, a lost engine lock
                for result in results:
                    result.outcome = Outcome.SUPERSEDED
                return
        txn.abort()
        for result in results:
            if result.outcome is Outcome.RETRY and round_.infrastructure is None:
                round_.infrastructure = result.error
        failed = [r for r in [*results, *failures] if r.outcome is Outcome.FAILED]
        record_failures(control, plan, failed, batch_id=batch_id)
        # The batch is retried as a whole: every partition that was loaded keeps its range.
        for result in results:
            if result.outcome is Outcome.LOADED:
                self._retries.setdefault((result.partition, result.start), _Retry(result.end))
        for result in failed:
            assert result.error is not None
            retry = self._retries.setdefault((result.partition, result.start),
                                             _Retry(result.end))
            retry.attempts += 1
            if retry.attempts < self.retry.max_retries:
                round_.failed_attempt = max(round_.failed_attempt, retry.attempts)
                continue
            self._retries.pop((result.partition, result.start), None)
            fatal = self._exhausted(control, result.error, batch_id)
            if fatal is not None:
                round_.fatal = fatal
                return

    def _read_whole(self, extractor: Extractor, partition: int, cursor: int, limit: int,
                    end_hint: int, early: int) -> PartitionData:
        """An unchunked range (IGNORE n LINES without a transform) is held in memory whole, so
        it ends where it reaches ``range_max_bytes``: the rest is the next batch's range.
        ``early``: read that many messages before ``cursor`` too (step 1's check)."""
        pieces = extractor.read_chunks(partition, cursor - early, limit + early,
                                       end_hint=end_hint, uncounted=early,
                                       chunk_bytes=self.settings.range_max_bytes)
        try:
            data = next(pieces)
        finally:
            pieces.close()
        if data.end < min(cursor + limit, end_hint):
            log.info("%s: %s[%d]@%d..%d cut at %d bytes (range_max_bytes)", self.plan.name,
                     self.plan.topic, partition, cursor, data.end, data.size_bytes)
        return data

    def _read_rest(
        self, chunks: Generator[PartitionData, None, None], feed: ChunkFeed, stop: threading.Event
    ) -> None:
        """The reader's side of a chunked batch partition: read each next chunk once a slot is
        free, while the batch thread loads the one before; a read failure fails the range."""
        plan = self.plan
        try:
            while feed.reserve(stop):
                try:
                    feed.put(next(chunks))
                except StopIteration:
                    feed.close()
                    return
            feed.cancel()  # STOP, or the batch thread gave up (then nobody listens)
        except Exception as exc:  # noqa: BLE001 - a broker failure mid-range fails the range
            feed.close(ExtractError(str(exc), pipeline=plan.name, topic=plan.topic,
                                    partition=feed.range.partition, start=feed.range.start,
                                    end=feed.range.end))
        finally:
            feed.cancel()  # no-op unless something above escaped: never leave the loader waiting
            chunks.close()

    def _run_one(
        self, txn: BatchTransaction, data: PartitionData | ChunkFeed, batch_id: int,
        attempt: int, extract_seconds: float, abort: AbortSignal,
    ) -> PartitionResult:
        try:
            return run_batch_partition(txn, self.plan, data, batch_id=batch_id,
                                       attempt=attempt, extract_seconds=extract_seconds,
                                       cancelled=abort)
        except BaseException:
            txn.abort(broken=True)  # a bug in the batch code: the batch is lost
            raise
        finally:
            if isinstance(data, ChunkFeed):
                data.abandoned.set()  # the reader stops

    def _ready_partitions(
        self, control: Any, extractor: Extractor
    ) -> list[tuple[int, int, int]]:
        """Step 1 and the choice of step 2: ``(partition, cursor, end)`` with data to load."""
        plan = self.plan
        partitions = extractor.partitions()
        if not partitions:
            return []
        marks = extractor.watermarks(partitions)
        control.begin()
        cursors = catalog.get_cursors(control, plan.database, plan.name)
        for partition in partitions:
            mark = marks[partition]
            known = self._known_marks.get(partition)
            if partition not in cursors:
                catalog.add_cursor(control, plan.database, plan.name, partition,
                                   cursor=mark.low, earliest=mark.low, latest=mark.high)
            elif known != mark:
                catalog.put_cursor(control, plan.database, plan.name, partition, cursor=None,
                                   earliest=mark.low, latest=mark.high)
            self._known_marks[partition] = mark
        control.commit()
        ready = []
        for partition in partitions:
            mark = marks[partition]
            cursor = cursors[partition].cursor if partition in cursors else mark.low
            if cursor > mark.high:
                raise CursorBeyondEndError(
                    f"cursor offset {cursor} is beyond the end of the partition (latest offset "
                    f"{mark.high}): the broker no longer has data the pipeline already loaded "
                    "(Tansu keeps topics in memory; was it restarted?). Run "
                    f"`ALTER PIPELINE {plan.name} SET OFFSETS EARLIEST` (reload what the broker "
                    f"has) or `SET OFFSETS LATEST`, then `START PIPELINE {plan.name}`",
                    pipeline=plan.name, topic=plan.topic, partition=partition,
                    start=cursor, end=mark.high,
                )
            if partition in cursors:
                self._marks[partition] = (cursor, cursors[partition].history)
            if cursor < mark.low:
                log.warning("%s: %s[%d] cursor %d is before the earliest offset %d; the "
                            "messages in between are gone", plan.name, plan.topic, partition,
                            cursor, mark.low)
            if cursor < mark.high:
                ready.append((partition, cursor, mark.high))
        return ready

    def _trim_batches(self, control: Any) -> None:
        """Keep PIPELINES_BATCHES bounded: every ``trim_every_batches`` batches, delete the rows
        of all but the newest ``batches_to_keep`` batches of this pipeline.

        On the control connection in a transaction of its own, not in the batch commit: the
        parallel batch partitions' commits then never wait on the DELETE's locks.
        """
        self._batches_since_trim += 1
        if self._batches_since_trim < self.settings.trim_every_batches:
            return
        self._batches_since_trim = 0
        control.begin()
        catalog.trim_batches(control, self.plan.database, self.plan.name,
                             keep=self.settings.batches_to_keep)
        control.commit()

    def _mark_to_check(self, partition: int, cursor: int) -> str | None:
        """The history mark the read of the range at ``cursor`` must meet first (step 1), or
        None: none kept (a cursor set by SET OFFSETS, a skip, an older engine) or not of the
        message just before the cursor."""
        kept = self._marks.get(partition)
        if kept is None or kept[0] != cursor or kept[1] is None:
            return None
        if int(kept[1].split(":", 1)[0]) != cursor - 1:
            return None
        known = self._known_marks.get(partition)
        if known is not None and known.low > cursor - 1:
            return None  # gone by retention: nothing to compare
        return kept[1]

    def _past_mark(self, data: PartitionData, mark: str, cursor: int,
                   end_hint: int) -> PartitionData:
        """Step 1's check on a range read from ``cursor - 1``: its first message must be the
        one the mark describes; returns the range from ``cursor``."""
        first = data.messages[0] if data.messages else None
        if first is not None and first.offset == cursor - 1:
            now = first.history_mark()
            if now != mark:
                plan = self.plan
                raise CursorBeyondEndError(
                    f"the partition's history changed under the cursor: the message at offset "
                    f"{cursor - 1} is not the one this pipeline loaded (mark then {mark}, now "
                    f"{now}); the broker was restarted and refilled (Tansu keeps topics in "
                    "memory) or the topic was re-created. Nothing was loaded from it. Run "
                    f"`ALTER PIPELINE {plan.name} SET OFFSETS EARLIEST` (load all the broker "
                    f"holds now) or `SET OFFSETS LATEST` (only what comes next), then "
                    f"`START PIPELINE {plan.name}`",
                    pipeline=plan.name, topic=plan.topic, partition=data.partition,
                    start=cursor, end=end_hint)
            messages = data.messages[1:]
        else:  # a gap at that offset (compaction): nothing to compare
            messages = [m for m in data.messages if m.offset >= cursor]
        return PartitionData(data.partition, cursor, max(data.end, cursor), messages)

    def _back_off(self, control: Any, error: BatchPartitionError, stop: threading.Event) -> None:
        """Step 6: wait, longer for each infrastructure failure in a row; the first one of a
        streak leaves a Warning row (if the database takes it)."""
        self._failures_in_a_row += 1
        delay = min(self.settings.retry_delay_s * 2 ** (self._failures_in_a_row - 1),
                    self.settings.max_backoff_s)
        log.warning("%s: %s; retrying in %.1f s (not counted as an attempt)", self.plan.name,
                    error, delay)
        if self._failures_in_a_row == 1:
            try:
                control.begin()
                record_error(control, self.plan, error, batch_id=None, error_type="Warning")
                control.commit()
            except Exception:  # noqa: BLE001 - the database may be what failed
                log.debug("could not record %s", error, exc_info=True)
        stop.wait(delay)

    # -- failures --------------------------------------------------------------------------
    def _exhausted(
        self, control: Any, error: BatchPartitionError, batch_id: int | None
    ) -> EngineError | None:
        """Retries used up: Error state (returned) or skip the range (None)."""
        if self.stmt.effective_stop_on_error or error.start < 0:
            return self._fail_pipeline(control, error, batch_id=batch_id, recorded=True)
        plan = self.plan
        control.begin()
        row = catalog.get_pipeline(control, plan.database, plan.name, for_update=True)
        cursors = catalog.get_cursors(control, plan.database, plan.name, for_update=True)
        current = cursors.get(error.partition)
        if (row is not None and row.state == self.run_state and current is not None
                and current.cursor == error.start):
            catalog.put_cursor(control, plan.database, plan.name, error.partition,
                               cursor=error.end)
            catalog.count_skipped(control, plan.pipeline_id)
            log.warning("%s: skipped %s after %d attempts (STOP_ON_ERROR OFF)", plan.name,
                        error.location, self.retry.max_retries)
        control.commit()
        return None

    def _fail_pipeline(
        self, control: Any, error: BatchPartitionError, *, batch_id: int | None,
        recorded: bool = False,
    ) -> EngineError:
        plan = self.plan
        control.begin()
        if not recorded:
            record_error(control, plan, error, batch_id=batch_id)
        if not self.foreground:
            catalog.set_state(control, plan.pipeline_id, State.ERROR, only_if=[State.RUNNING])
        control.commit()
        log.error("%s: pipeline stopped with an error: %s", plan.name, error)
        return error


def _pooled_connection(pool: queue.Queue[Any], config: Config) -> Any:
    """A connection for a batch's transaction: a pooled one that still answers, or a new one."""
    try:
        conn = pool.get_nowait()
    except queue.Empty:
        return open_connection(config)
    try:
        conn.ping(reconnect=False)
    except Exception:  # noqa: BLE001 - a dead pooled connection is replaced
        _close(conn)
        return open_connection(config)
    return conn


def _as_partition_error(plan: PipelinePlan, result: PartitionResult,
                        exc: Exception | None) -> BatchPartitionError:
    """An infrastructure failure of the batch commit, as the error the back-off reports."""
    return LoadError(f"{type(exc).__name__}: {exc}", pipeline=plan.name, topic=plan.topic,
                     partition=result.partition, start=result.start, end=result.end)


def _close(conn: Any) -> None:
    try:
        conn.close()
    except Exception:  # noqa: BLE001 - already broken; nothing left to release
        log.debug("closing a connection failed", exc_info=True)

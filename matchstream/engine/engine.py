"""The long-running engine process: one runner thread per Running pipeline.

The catalog is the only channel between statements (run by ``matchstream sql`` in another
process) and the engine. Every :data:`~matchstream.engine.settings.DEFAULT_POLL_S` the engine

1. reads which pipelines are ``Running`` (and their definition versions);
2. stops the runners of pipelines that are no longer Running or whose definition changed
   (CREATE OR REPLACE, ALTER): their in-flight batch partition is killed and rolled back, or, if
   it already holds the commit lock, finishes;
3. starts runners for Running pipelines without one, and restarts crashed runners.

Before step 1 the engine takes the catalog's engine lock (:data:`catalog.ENGINE_LOCK`) on its
catalog session, or waits for it and gives up naming the engine that holds it: one engine per
catalog, and a batch commits only while its engine's session still holds the lock. It then
removes the work files a killed engine left.

Killing the engine at any moment loses nothing: the database rolls back the open transaction and
the next engine resumes from the committed cursors. For the same reason a lost database
connection (MariaDB restarted, the session killed) is not fatal: the engine logs it, waits
:data:`RECONNECT_BACKOFF_S`, reconnects and goes on; a runner that loses its connections ends and
is restarted after :data:`RESTART_BACKOFF_S`, resuming from the committed cursors. A lost
catalog session also lost the engine lock: every runner is stopped, and none runs again before
the lock is held again. A runner that crashes for another reason (a bug) :data:`MAX_CRASHES`
times in a row puts its pipeline in ``Error`` with the exception as its error row.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

from matchstream.config import Config
from matchstream.engine import catalog
from matchstream.engine.catalog import PipelineRow, State
from matchstream.engine.errors import EngineError
from matchstream.engine.runner import PipelineRunner
from matchstream.engine.settings import DATABASE_ERRORS, EngineSettings, open_connection

__all__ = ["Engine"]

log = logging.getLogger(__name__)

# A runner that crashed (a bug or a lost database connection) is restarted after this long, so a
# persistent failure does not spin.
RESTART_BACKOFF_S = 2.0
# After the catalog connection fails (MariaDB restarting, the session killed) the engine waits
# this long before reconnecting: long enough not to flood a restarting server or the log with
# attempts, short enough that pipelines resume within seconds of the server coming back.
RECONNECT_BACKOFF_S = 1.0
# A runner that crashed this many times in a row, each within CRASH_WINDOW_S of its start, puts
# its pipeline in Error instead of restarting for ever without a word in PIPELINES_ERRORS.
MAX_CRASHES = 5
CRASH_WINDOW_S = 60.0
# Work files older than this when the engine starts belong to no running batch (a FOREGROUND
# batch of `matchstream sql` may be writing a newer one) and are removed.
STALE_WORK_FILE_S = 60.0


@dataclass
class _Worker:
    row: PipelineRow
    thread: threading.Thread
    stop: threading.Event


class Engine:
    def __init__(self, config: Config, settings: EngineSettings | None = None) -> None:
        self.config = config
        self.settings = settings or EngineSettings.from_config(config)
        self._workers: dict[int, _Worker] = {}
        self._crashes: dict[int, float] = {}
        self._crashes_in_a_row: dict[int, int] = {}

    def run(self, stop: threading.Event) -> None:
        """Steps 1-3 of the module docstring until ``stop`` is set.

        The first connection must succeed (a wrong port or password is reported at once);
        after that a database error only costs a reconnect.
        """
        conn: Any = open_connection(self.config)
        try:
            catalog.ensure_catalog(conn)
            self._claim(conn)
            self._sweep_work_files()
            log.info("engine started; catalog in schema %s", catalog.CATALOG_SCHEMA)
            while not stop.is_set():
                try:
                    if conn is None:
                        conn = open_connection(self.config)
                        catalog.ensure_catalog(conn)
                        self._claim(conn)
                        log.info("reconnected to the catalog")
                    conn.begin()
                    running = {r.pipeline_id: r for r in catalog.list_pipelines(
                        conn, states=[State.RUNNING])}
                    conn.commit()
                except (*DATABASE_ERRORS, catalog.EngineLockHeld) as exc:
                    # The lock went with the session: no runner may go on without it.
                    self._stop_all()
                    log.warning("catalog connection failed (%s); reconnecting in %.1f s",
                                exc, RECONNECT_BACKOFF_S)
                    _close(conn)
                    conn = None
                    stop.wait(RECONNECT_BACKOFF_S)
                    continue
                self._reconcile(running)
                stop.wait(self.settings.poll_s)
        finally:
            self._stop_all()
            _close(conn)
            log.info("engine stopped")

    def _claim(self, conn: Any) -> None:
        session = catalog.claim_engine(conn, wait_s=self.settings.lock_wait_s)
        self.settings = replace(self.settings, engine_session=session)

    def _stop_all(self) -> None:
        for worker in self._workers.values():
            worker.stop.set()
        for worker in self._workers.values():
            worker.thread.join(timeout=30)
        self._workers = {k: w for k, w in self._workers.items() if w.thread.is_alive()}

    def _sweep_work_files(self) -> None:
        work = self.settings.work_dir
        if not work.is_dir():
            return
        cutoff = time.time() - STALE_WORK_FILE_S
        removed = 0
        for path in work.iterdir():
            try:
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except OSError as exc:  # gone meanwhile, or not ours to remove: leave it
                log.debug("cannot remove %s: %s", path, exc)
        if removed:
            log.info("removed %d work files left by an earlier engine", removed)

    def _reconcile(self, running: dict[int, PipelineRow]) -> None:
        for pipeline_id, worker in list(self._workers.items()):
            wanted = running.get(pipeline_id)
            stale = wanted is None or wanted.definition_version != worker.row.definition_version
            if stale:
                worker.stop.set()
            if not worker.thread.is_alive():
                del self._workers[pipeline_id]
        now = time.monotonic()
        for pipeline_id, row in running.items():
            if pipeline_id in self._workers:
                continue
            if now - self._crashes.get(pipeline_id, -RESTART_BACKOFF_S) < RESTART_BACKOFF_S:
                continue
            stop = threading.Event()
            thread = threading.Thread(target=self._run_pipeline, args=(row, stop),
                                      name=f"pipeline-{row.database}.{row.name}", daemon=True)
            self._workers[pipeline_id] = _Worker(row, thread, stop)
            thread.start()

    def _run_pipeline(self, row: PipelineRow, stop: threading.Event) -> None:
        log.info("running pipeline %s.%s", row.database, row.name)
        started = time.monotonic()
        try:
            runner = PipelineRunner(self.config, row, self.settings)
            summary = runner.run(stop)
            self._crashes_in_a_row.pop(row.pipeline_id, None)
            log.info("pipeline %s.%s: %d batches, %d rows%s", row.database, row.name,
                     summary.batches, summary.rows,
                     f", ended with {summary.error}" if summary.error else "")
        except EngineError as exc:
            # The definition cannot run any more (transform deleted, option unsupported):
            # like a batch that exhausted its retries with STOP_ON_ERROR ON.
            log.error("pipeline %s.%s cannot run: %s", row.database, row.name, exc)
            self._to_error(row, exc)
        except DATABASE_ERRORS as exc:
            # Expected when MariaDB restarts: no traceback; the runner resumes from the
            # committed cursors once _reconcile restarts it.
            log.warning("pipeline %s.%s lost its database connection (%s); restarting in %.0f s",
                        row.database, row.name, exc, RESTART_BACKOFF_S)
            self._crashes[row.pipeline_id] = time.monotonic()
        except Exception as exc:
            self._crashes[row.pipeline_id] = time.monotonic()
            in_a_row = 1
            if time.monotonic() - started < CRASH_WINDOW_S:
                in_a_row += self._crashes_in_a_row.get(row.pipeline_id, 0)
            self._crashes_in_a_row[row.pipeline_id] = in_a_row
            if in_a_row < MAX_CRASHES:
                log.exception("pipeline %s.%s crashed (%d in a row); restarting", row.database,
                              row.name, in_a_row)
                return
            log.exception("pipeline %s.%s crashed %d times in a row; it goes to Error",
                          row.database, row.name, in_a_row)
            self._crashes_in_a_row.pop(row.pipeline_id, None)
            self._to_error(row, EngineError(
                f"the engine's runner of this pipeline crashed {in_a_row} times in a row; "
                f"last: {type(exc).__name__}: {exc}"))

    def _to_error(self, row: PipelineRow, exc: EngineError) -> None:
        conn = None
        try:
            conn = open_connection(self.config)
            conn.begin()
            catalog.insert_error(conn, database=row.database, name=row.name, error_type="Error",
                                 code=exc.code, message=str(exc), kind="Internal")
            catalog.set_state(conn, row.pipeline_id, State.ERROR, only_if=[State.RUNNING])
            conn.commit()
        except DATABASE_ERRORS as db_exc:
            # Not recorded: the runner is restarted and meets the same error again.
            log.warning("cannot record the error of %s (%s)", row.name, db_exc)
            self._crashes[row.pipeline_id] = time.monotonic()
        finally:
            _close(conn)


def _close(conn: Any) -> None:
    if conn is None:
        return
    try:
        conn.close()
    except Exception:  # noqa: BLE001 - already broken; nothing left to release
        log.debug("closing a connection failed", exc_info=True)

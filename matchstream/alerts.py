"""`matchstream alerts`: each high-probability prediction onto the ``alerts`` topic exactly once.

The topic is the record of what was published. The pipeline ``alerts_published``
(sql/10_pipelines.sql) loads every message of the topic back into the table of that name, whose
primary key is the prediction id, so the table holds exactly the ids on the topic. A round of the
publisher:

1. **catch up**: read the true end of every partition of the topic from the broker and wait until
   the pipeline's cursors have reached it. A cursor commits together with the rows before it
   (docs/engine.md, "Exactly once"), so the table then holds every id on the topic;
2. **publish**: run sql/alerts/publish.sql, a ``SELECT ... INTO KAFKA`` of the view
   ``alerts_to_publish`` (match_alerts without the ids in alerts_published), on an idempotent
   producer, so a retried send inside the round cannot duplicate a message either.

Why a crash cannot publish an alert twice: whatever a dead round delivered is on the topic, and
the next round (of this process or a restarted one) publishes only after step 1 has loaded it
back, so its query no longer selects those ids. ``alerts.after_publish`` is the fault point right
after step 2 (tests/integration/test_alerts.py kills the publisher there and restarts it). A
round that dies half way through step 2 left a prefix of its alerts on the topic; the next
round publishes the rest. Alerts are per prediction id: a date scored again later (the scoring
pipeline REPLACEs predictions) is not published again.

What it relies on: one publisher at a time (a lock file in the state directory; two publishers
would both select the same alerts between their catch-up and their publish), the pipeline
running (a stopped or failed one is an error, never a reason to publish anyway), and a broker
that keeps its data (Tansu keeps topics in memory: after a broker restart the pipeline's cursor
lies beyond the topic's end and it goes to Error, which stops the publisher with that error).
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matchstream.config import Config, project_root
from matchstream.db import connect
from matchstream.errors import MatchstreamError
from matchstream.faults import hit

__all__ = ["AlertsError", "AlertsOptions", "catch_up", "publish_round", "run_publisher"]

# How often a round looks at the pipeline's cursors while it waits for them.
POLL_S = 0.1


class AlertsError(MatchstreamError):
    """The publisher cannot publish safely; says which pipeline or topic and what to do."""


def _default_statement() -> Path:
    return project_root() / "sql" / "alerts" / "publish.sql"


@dataclass(frozen=True)
class AlertsOptions:
    database: str = "speed_dating"
    pipeline: str = "alerts_published"  # loads the topic back; its table is the record
    topic: str = "alerts"
    statement: Path = field(default_factory=_default_statement)
    interval_s: float = 2.0  # between rounds of `matchstream alerts`
    catch_up_timeout_s: float = 120.0


def topic_ends(bootstrap: str, topic: str) -> dict[int, int]:
    """Each partition's true end (the extractor's probe: Tansu's ListOffsets can lie inside the
    last record batch, and waiting for that offset would publish before the reload is done)."""
    from matchstream.engine.extractor import Extractor

    extractor = Extractor([bootstrap], topic, client_id="matchstream-alerts")
    try:
        partitions = extractor.partitions()
        if not partitions:
            raise AlertsError(f"topic {topic!r} does not exist at {bootstrap} (matchstream up "
                              "creates it; or create it with 1 or more partitions)")
        return {p: mark.high for p, mark in extractor.watermarks(partitions).items()}
    finally:
        extractor.close()


def catch_up(conn: Any, config: Config, options: AlertsOptions) -> dict[int, int]:
    """Step 1: wait until the pipeline has loaded every message on the topic; returns the ends.

    Raises AlertsError if the pipeline is missing, reads another topic, is not Running while
    behind, is in Error, or is still behind after ``catch_up_timeout_s``.
    """
    from matchstream.engine import catalog

    ends = topic_ends(config.kafka_bootstrap, options.topic)
    deadline = time.monotonic() + options.catch_up_timeout_s
    where = f"pipeline '{options.database}.{options.pipeline}'"
    while True:
        conn.commit()  # a fresh snapshot for each look
        row = catalog.get_pipeline(conn, options.database, options.pipeline)
        if row is None:
            raise AlertsError(f"{where} does not exist: apply sql/10_pipelines.sql "
                              "(matchstream demo does) and START PIPELINE alerts_published")
        source = row.statement().source.topic
        if source != options.topic:
            raise AlertsError(f"{where} loads topic {source!r}, not {options.topic!r}: it "
                              "cannot be the record of what was published there")
        cursors = catalog.get_cursors(conn, options.database, options.pipeline)
        behind = sum(max(0, end - (cursors[p].cursor if p in cursors else 0))
                     for p, end in ends.items())
        if not behind:
            return ends
        if row.state == "Error":
            raise AlertsError(f"{where} is in state Error, {behind} messages behind topic "
                              f"{options.topic!r}: see its PIPELINES_ERRORS; publishing now "
                              "could publish again what it has not loaded")
        if row.state != "Running":
            raise AlertsError(f"{where} is {row.state}, {behind} messages behind topic "
                              f"{options.topic!r}: START PIPELINE {options.pipeline} first; "
                              "publishing now could publish again what it has not loaded")
        if time.monotonic() > deadline:
            raise AlertsError(f"{where} is still {behind} messages behind topic "
                              f"{options.topic!r} after {options.catch_up_timeout_s:.0f} s")
        time.sleep(POLL_S)


def _statement(options: AlertsOptions, variables: Mapping[str, str]) -> Any:
    """The one SELECT ... INTO KAFKA of the statement file, parsed, writing to the topic."""
    from matchstream.ddl import ast, parse_statement, prepare_script

    path = options.statement
    statements = prepare_script(path.read_text(encoding="utf-8"), str(path), dict(variables))
    if len(statements) != 1:
        raise AlertsError(f"{path}: expected one SELECT ... INTO KAFKA statement, found "
                          f"{len(statements)}")
    stmt = statements[0]
    parsed = parse_statement(stmt.text, line=stmt.line, col=stmt.col, source=str(path))
    if not isinstance(parsed, ast.SelectIntoKafka):
        raise AlertsError(f"{stmt.location}: expected SELECT ... INTO KAFKA")
    if parsed.destination.topic != options.topic:
        raise AlertsError(f"{stmt.location}: publishes to topic {parsed.destination.topic!r}, "
                          f"but pipeline {options.pipeline} records topic {options.topic!r}")
    return parsed


def publish_round(config: Config, options: AlertsOptions,
                  variables: Mapping[str, str] | None = None) -> int:
    """Steps 1 and 2 of the module docstring; returns how many alerts were published."""
    from matchstream.engine.catalog import ensure_catalog
    from matchstream.engine.statements import Message, execute
    from matchstream.sqlrunner import default_variables

    statement = _statement(options, variables or default_variables(config))
    conn = connect(config)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
                           (options.database,))
            if not cursor.fetchall():
                raise AlertsError(f"database {options.database!r} does not exist: run "
                                  "matchstream demo (or apply sql/ with matchstream sql)")
        ensure_catalog(conn)
        conn.select_db(options.database)
        catch_up(conn, config, options)
        conn.autocommit(False)  # pipeline statements run in explicit transactions
        result = execute(statement, conn=conn, config=config, sql_dir=options.statement.parent)
    finally:
        conn.close()
    hit("alerts.after_publish")
    assert isinstance(result, Message), "SELECT ... INTO KAFKA answers with a row count"
    return result.rowcount


@contextmanager
def publisher_lock(config: Config) -> Iterator[None]:
    """One publisher per state directory (held for the process's life, released by the kernel
    if it dies)."""
    config.state_dir.mkdir(parents=True, exist_ok=True)
    path = config.state_dir / "alerts.lock"
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AlertsError(f"another publisher holds {path} (matchstream alerts or "
                              "matchstream demo); one at a time keeps alerts exactly "
                              "once") from None
        yield
    finally:
        os.close(fd)


def run_publisher(
    config: Config,
    options: AlertsOptions,
    *,
    once: bool = False,
    stop: threading.Event | None = None,
    emit: Callable[[str], None] = print,
    variables: Mapping[str, str] | None = None,
) -> int:
    """Rounds every ``interval_s`` until ``stop`` is set (or one with ``once``); returns how many
    alerts this run published."""
    stop = stop or threading.Event()
    total = 0
    with publisher_lock(config):
        while True:
            published = publish_round(config, options, variables)
            total += published
            if published:
                emit(f"published {published} alerts to topic {options.topic} "
                     f"({total} in this run)")
            if once or stop.wait(options.interval_s):
                return total

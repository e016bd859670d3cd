"""Each pipeline's state, lag, last batch time and last error, for ``matchstream status``.

Read from the local engine's catalog, the tables SingleStore calls ``information_schema.PIPELINES``,
``PIPELINES_CURSORS``, ``PIPELINES_BATCHES`` and ``PIPELINES_ERRORS``. The lag is what the engine
last saw: the sum over partitions of the topic's latest offset minus the pipeline's cursor, as
of the engine's latest look at the topic (``UPDATED_UNIX_TIMESTAMP``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from matchstream.engine.catalog import CATALOG_SCHEMA

__all__ = ["PipelineStatus", "format_statuses", "pipeline_statuses"]

_Q = f"`{CATALOG_SCHEMA}`"
_WHERE_SAME = "x.DATABASE_NAME = p.DATABASE_NAME AND x.PIPELINE_NAME = p.PIPELINE_NAME"
_QUERY = f"""
SELECT p.DATABASE_NAME, p.PIPELINE_NAME, p.STATE,
       (SELECT SUM(GREATEST(x.LATEST_OFFSET - x.CURSOR_OFFSET, 0))
        FROM {_Q}.PIPELINES_CURSORS x WHERE {_WHERE_SAME}) AS `lag`,
       (SELECT x.BATCH_TIME FROM {_Q}.PIPELINES_BATCHES x
        WHERE {_WHERE_SAME} AND x.BATCH_STATE = 'Succeeded'
        ORDER BY x.BATCH_ID DESC LIMIT 1) AS batch_time,
       (SELECT x.ERROR_ID FROM {_Q}.PIPELINES_ERRORS x
        WHERE {_WHERE_SAME} AND x.ERROR_TYPE = 'Error'
        ORDER BY x.ERROR_ID DESC LIMIT 1) AS error_id
FROM {_Q}.PIPELINES p
ORDER BY p.DATABASE_NAME, p.PIPELINE_NAME
"""
_ERRORS = (f"SELECT ERROR_ID, ERROR_UNIX_TIMESTAMP, ERROR_MESSAGE, BATCH_SOURCE_PARTITION_ID, "
           f"BATCH_EARLIEST_OFFSET FROM {_Q}.PIPELINES_ERRORS WHERE ERROR_ID IN ")


@dataclass(frozen=True)
class PipelineStatus:
    database: str
    name: str
    state: str
    lag: int | None  # messages not loaded yet; None before the engine looked at the topic
    batch_seconds: float | None  # the latest successful batch
    last_error: str | None  # one line: when, where (partition@offset) and the message
    last_error_at: float | None


def pipeline_statuses(conn: Any) -> list[PipelineStatus]:
    """Every pipeline of the catalog, by database and name; [] when no catalog exists yet."""
    with conn.cursor() as cursor:
        cursor.execute("SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                       "AND TABLE_NAME = 'PIPELINES'", (CATALOG_SCHEMA,))
        if not cursor.fetchall():
            return []
        cursor.execute(_QUERY)
        rows = cursor.fetchall()
        ids = [int(r[5]) for r in rows if r[5] is not None]
        errors: dict[int, tuple[Any, ...]] = {}
        if ids:
            cursor.execute(_ERRORS + "(" + ", ".join(["%s"] * len(ids)) + ")", ids)
            errors = {int(e[0]): e for e in cursor.fetchall()}
    statuses = []
    for database, name, state, lag, batch_time, error_id in rows:
        error = errors.get(int(error_id)) if error_id is not None else None
        statuses.append(PipelineStatus(
            str(database), str(name), str(state), None if lag is None else int(lag),
            None if batch_time is None else float(batch_time),
            None if error is None else _error_line(error),
            None if error is None else float(error[1])))
    return statuses


def _error_line(error: tuple[Any, ...]) -> str:
    """
    >>> _error_line((1, 0.0, "bad\\nrow", "0", 41))
    '[0]@41: bad row'
    """
    _, _, message, partition, offset = error
    where = f"[{partition}]@{offset}: " if partition is not None else ""
    return where + " ".join(str(message).split())


def format_statuses(statuses: list[PipelineStatus], now: float | None = None,
                    width: int = 80) -> str:
    """The table ``matchstream status`` prints under the components.

    >>> print(format_statuses([PipelineStatus("db", "p", "Running", 3, 0.25, "[0]@7: x", 90.0)],
    ...                       now=100.0))
    pipeline      state     lag  batch s  last error
    db.p          Running     3     0.25  10 s ago [0]@7: x
    """
    if not statuses:
        return "no pipelines (CREATE PIPELINE ... then START PIPELINE ...)"
    now = time.time() if now is None else now
    names = [f"{s.database}.{s.name}" for s in statuses]
    wide = max(12, *(len(n) for n in names))
    lines = [f"{'pipeline':<{wide}}  {'state':<8} {'lag':>4}  {'batch s':>7}  last error"]
    for name, s in zip(names, statuses, strict=True):
        lag = "-" if s.lag is None else str(s.lag)
        batch = "-" if s.batch_seconds is None else f"{s.batch_seconds:.2f}"
        error = "-"
        if s.last_error is not None and s.last_error_at is not None:
            error = f"{max(0, now - s.last_error_at):.0f} s ago {s.last_error}"
            error = error if len(error) <= width else error[:width - 3] + "..."
        lines.append(f"{name:<{wide}}  {s.state:<8} {lag:>4}  {batch:>7}  {error}")
    return "\n".join(lines)

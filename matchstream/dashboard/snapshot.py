"""One refresh of the dashboard: run every query on one session and shape the rows for charts.

The result is plain JSON (what ``/data.json`` serves and the report embeds): columnar series,
one list per column, as uPlot draws them, with times as Unix seconds. A query that fails (a view
missing on an old schema, a catalog not created yet) leaves its section empty and its error in
``errors`` under the section's name, so the page shows it and the other sections still update.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pymysql

from matchstream.dashboard.queries import (
    CATALOG_QUERIES,
    INPUTS_OF_LIVE,
    LIVE,
    QUERIES,
    WINDOW_SECONDS,
    catalog_query,
)
from matchstream.errors import MatchstreamError

__all__ = ["Reuse", "Snapshot", "collect", "columns", "epoch", "fill_seconds", "topic_of", "where"]

Snapshot = dict[str, Any]
Row = dict[str, Any]


class Reuse:
    """The live-quality rows of the last refresh, reused while their inputs are unchanged.

    Those views rank every prediction (queries.py); between outcomes, a page left open would
    pay that every 2 s for the same answer. ``max_age_s`` bounds how long a change the inputs'
    counters cannot see (an UPDATE in place) stays unseen.

    >>> reuse = Reuse(max_age_s=60)
    >>> reuse.put(("k",), {"live": [{"auc": 0.5}]}, now=0.0)
    >>> reuse.get(("k",), now=59.0), reuse.get(("other",), now=1.0), reuse.get(("k",), now=61.0)
    ({'live': [{'auc': 0.5}]}, None, None)
    """

    def __init__(self, max_age_s: float = 60.0) -> None:
        self.max_age_s = max_age_s
        self._key: tuple[Any, ...] | None = None
        self._rows: dict[str, list[Row]] = {}
        self._at = 0.0
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...], now: float) -> dict[str, list[Row]] | None:
        with self._lock:
            if key == self._key and now - self._at <= self.max_age_s:
                return dict(self._rows)
            return None

    def put(self, key: tuple[Any, ...], rows: dict[str, list[Row]], now: float) -> None:
        with self._lock:
            self._key, self._rows, self._at = key, dict(rows), now


def collect(session: Callable[[], AbstractContextManager[Any]], *, database: str,
            catalog: str, reuse: Reuse | None = None) -> Snapshot:
    """Everything the page shows, read on one session from ``session()`` (a context manager).

    The session is opened here so that an unreachable database is reported on the page like
    any other error instead of failing the request. With ``reuse``, the live-quality queries
    run only when their inputs changed (or their rows are older than its ``max_age_s``).
    """
    snapshot: Snapshot = {"database": database, "catalog": catalog, "generated_at": time.time(),
                          "errors": {}, "cost": {"queries": 0, "seconds": 0.0, "by_query": {},
                                                 "reused": []}}
    rows: dict[str, list[Row]] = {}
    try:
        with session() as conn:
            _run(conn, snapshot, rows, database=database, catalog=catalog, reuse=reuse)
    except (MatchstreamError, pymysql.MySQLError, OSError) as exc:
        # No session (the stack is down, no password file, no such database): on the page.
        snapshot["errors"]["connection"] = _message(exc)
    return _shape(snapshot, rows)


def _run(conn: Any, snapshot: Snapshot, rows: dict[str, list[Row]], *, database: str,
         catalog: str, reuse: Reuse | None) -> None:
    params = {"database": database, "window": WINDOW_SECONDS}
    named = [*QUERIES.items(), *((n, catalog_query(n, catalog)) for n in CATALOG_QUERIES)]
    key: tuple[Any, ...] | None = None
    for name, query in named:
        if name in LIVE and key is not None and reuse is not None:
            kept = reuse.get(key, time.monotonic())
            if kept is not None and name in kept:
                rows[name] = kept[name]
                snapshot["cost"]["reused"].append(name)
                continue
        started = time.perf_counter()
        try:
            rows[name] = _fetch(conn, query, params)
        except pymysql.MySQLError as exc:
            snapshot["errors"][name] = _message(exc)
            if isinstance(exc, pymysql.OperationalError) and _session_lost(exc):
                break
        finally:
            spent = time.perf_counter() - started
            snapshot["cost"]["queries"] += 1
            snapshot["cost"]["seconds"] += spent
            snapshot["cost"]["by_query"][name] = spent
        if name == "totals" and rows.get("totals"):
            key = tuple(rows["totals"][0].get(c) for c in INPUTS_OF_LIVE)
    if reuse is not None and key is not None and all(n in rows for n in LIVE) and not (
            set(LIVE) & set(snapshot["errors"])) and not snapshot["cost"]["reused"]:
        reuse.put(key, {n: rows[n] for n in LIVE}, time.monotonic())


def _fetch(conn: Any, query: str, params: dict[str, Any]) -> list[Row]:
    with conn.cursor() as cursor:
        cursor.execute(query, params)
        names = [d[0] for d in cursor.description or ()]
        return [dict(zip(names, (_plain(v) for v in r), strict=True)) for r in cursor.fetchall()]


def _session_lost(exc: pymysql.OperationalError) -> bool:
    return bool(exc.args) and exc.args[0] in {2006, 2013}


def _message(exc: BaseException) -> str:
    if isinstance(exc, pymysql.MySQLError) and len(exc.args) >= 2:
        return f"({exc.args[0]}) {exc.args[1]}"
    return str(exc) or type(exc).__name__


def _plain(value: Any) -> Any:
    """A JSON-ready value: DECIMAL as float, DATETIME as Unix seconds (stored in UTC), bytes as
    text.

    >>> _plain(Decimal("0.25")), _plain(datetime(1970, 1, 1, 0, 1)), _plain(b"x")
    (0.25, 60.0, 'x')
    """
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN; a NULL is what the page shows for "no figure"
    if isinstance(value, datetime):
        return epoch(value)
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return value


def epoch(value: datetime | str | None) -> float | None:
    """Unix seconds of a time the tables hold in UTC (a DATETIME or its text).

    >>> epoch("1970-01-01 00:02:00"), epoch(None)
    (120.0, None)
    """
    if value is None:
        return None
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when.replace(tzinfo=UTC).timestamp()


def columns(rows: Iterable[Row], names: Sequence[str]) -> dict[str, list[Any]]:
    """Rows as one list per column, the shape uPlot draws.

    >>> columns([{"a": 1, "b": 2}, {"a": 3, "b": None}], ["a", "b"])
    {'a': [1, 3], 'b': [2, None]}
    """
    rows = list(rows)
    return {n: [r.get(n) for r in rows] for n in names}


def fill_seconds(rows: Sequence[Row]) -> dict[str, list[Any]]:
    """Predictions per second with the silent seconds as 0, so the chart drops to zero.

    >>> fill_seconds([{"second": "1970-01-01 00:00:01", "predictions": 2},
    ...               {"second": "1970-01-01 00:00:04", "predictions": 1}])
    {'second': [1.0, 2.0, 3.0, 4.0], 'predictions': [2, 0, 0, 1]}
    """
    counts = {epoch(r["second"]): int(r["predictions"]) for r in rows}
    if not counts:
        return {"second": [], "predictions": []}
    first, last = int(min(c for c in counts if c is not None)), int(max(
        c for c in counts if c is not None))
    seconds = [float(s) for s in range(first, last + 1)]
    return {"second": seconds, "predictions": [counts.get(s, 0) for s in seconds]}


def where(error: Row, topics: dict[str, str]) -> str:
    """Where a PIPELINES_ERRORS row happened: pipeline, batch, ``topic[partition]@offsets``.

    >>> where({"PIPELINE_NAME": "scoring", "BATCH_ID": 7, "BATCH_SOURCE_PARTITION_ID": "0",
    ...        "BATCH_EARLIEST_OFFSET": 40, "BATCH_LATEST_OFFSET": 52,
    ...        "LOAD_DATA_LINE_NUMBER": 3}, {"scoring": "scoring"})
    'pipeline scoring, batch 7, scoring[0]@40..52, line 3'
    >>> where({"PIPELINE_NAME": "p", "BATCH_ID": None}, {})
    'pipeline p'
    """
    parts = [f"pipeline {error['PIPELINE_NAME']}"]
    if error.get("BATCH_ID") is not None:
        parts.append(f"batch {error['BATCH_ID']}")
    partition = error.get("BATCH_SOURCE_PARTITION_ID")
    if partition is not None:
        topic = topics.get(str(error["PIPELINE_NAME"]), "")
        span = f"@{error.get('BATCH_EARLIEST_OFFSET')}"
        if error.get("BATCH_LATEST_OFFSET") is not None:
            span += f"..{error['BATCH_LATEST_OFFSET']}"
        parts.append(f"{topic}[{partition}]{span}")
    if error.get("LOAD_DATA_LINE_NUMBER") is not None:
        parts.append(f"line {error['LOAD_DATA_LINE_NUMBER']}")
    return ", ".join(parts)


def topic_of(config_json: Any) -> str:
    """The topic of a pipeline's ``CONFIG_JSON`` (its ``connection_string`` is host/topic).

    >>> topic_of('{"connection_string": "127.0.0.1:9092/training"}'), topic_of("not json")
    ('training', '')
    """
    try:
        endpoint = json.loads(config_json).get("connection_string") or ""
    except (TypeError, ValueError, AttributeError):
        return ""
    return str(endpoint).rpartition("/")[2]


def _shape(snapshot: Snapshot, rows: dict[str, list[Row]]) -> Snapshot:
    totals = rows.get("totals") or [{}]
    snapshot["totals"] = totals[0]
    snapshot["training"] = columns(reversed(rows.get("training", [])), [
        "model_version", "trained_at", "batch_rows", "rows_seen_total", "accuracy",
        "accuracy_baseline", "auc", "f1"])
    live = rows.get("live") or [{}]
    snapshot["live"] = live[0]
    per_minute = [{**r, "minute": epoch(r["minute"])} for r in reversed(
        rows.get("live_per_minute", []))]
    snapshot["live_per_minute"] = columns(per_minute, [
        "minute", "with_outcome", "accuracy", "accuracy_baseline", "auc"])
    snapshot["live_per_version"] = columns(reversed(rows.get("live_per_version", [])), [
        "model_version", "predictions", "with_outcome", "accuracy", "accuracy_baseline", "auc"])
    snapshot["predictions_per_second"] = fill_seconds(rows.get("predictions_per_second", []))
    snapshot["drift"] = rows.get("drift", [])
    snapshot["pipelines"], snapshot["batch_times"], snapshot["recent_errors"] = _pipelines(rows)
    return snapshot


def _pipelines(rows: dict[str, list[Row]]) -> tuple[list[Row], dict[str, Any], list[Row]]:
    lag = {r["PIPELINE_NAME"]: r for r in rows.get("lag", [])}
    batches = list(reversed(rows.get("batches", [])))
    topics: dict[str, str] = {}
    pipelines = []
    for p in rows.get("pipelines", []):
        name = str(p["PIPELINE_NAME"])
        topics[name] = topic_of(p.get("CONFIG_JSON"))
        mine = [b for b in batches if b["PIPELINE_NAME"] == name]
        seen = lag.get(name, {})
        pipelines.append({
            "name": name, "state": p["STATE"], "topic": topics[name],
            # None until the engine has seen where any of its partitions ends.
            "lag": None if not seen.get("partitions_seen") else seen.get("lag"),
            "lag_seen_at": seen.get("seen_at"),
            "batch_seconds": mine[-1]["batch_time"] if mine else None,
            "last_batch_at": mine[-1]["started"] if mine else None,
            "batches_in_window": len(mine),
        })
    names = [p["name"] for p in pipelines]
    # One x (batch start) shared by every pipeline's series, None where another pipeline ran.
    times = [b["started"] for b in batches]
    series = [[b["batch_time"] if b["PIPELINE_NAME"] == n else None for b in batches]
              for n in names]
    errors = [{"id": e["ERROR_ID"], "at": e["ERROR_UNIX_TIMESTAMP"], "pipeline": e["PIPELINE_NAME"],
               "type": e["ERROR_TYPE"], "kind": e["ERROR_KIND"], "code": e["ERROR_CODE"],
               "message": e["ERROR_MESSAGE"], "std_error": e["std_error"],
               "where": where(e, topics)} for e in rows.get("errors", [])]
    return pipelines, {"pipelines": names, "started": times, "series": series}, errors

"""The main job: the pipelines on the speed-dating data, end to end, and a short summary.

Steps (``run_demo``):
  1. Apply ``sql/`` in order (schema, pipelines, views) and start the pipelines and their reject
     pipelines (``training_rejects``, ``scoring_rejects``, ``outcomes_rejects``: the bad
     messages, ``rejected_rows``).
  2. Produce ``data/train.csv`` to ``training`` at a steady rate while ``data/score.csv`` goes to
     ``scoring`` at the same time, so scoring uses newer and newer model versions; the true
     outcome of each scored date (``data/score_labels.csv``) goes to ``outcomes`` a delay after
     its scoring row, so outcomes come in while scoring is still going on, as they would in real
     use. Every 50th outcome is never sent: those predictions stay ``awaiting_outcome``.
  3. Wait until every pipeline's cursors reach the offsets the producer was acknowledged for on
     its topic (not a sleep); a pipeline in state Error ends the wait with its latest error.
     From step 1 on, the alerts publisher (``matchstream alerts``, matchstream/alerts.py) runs
     in a thread: each new row of ``match_alerts`` goes to the ``alerts`` topic exactly once;
     after the wait a last round publishes the rest and ``alerts_published`` catches up.
  4. Print the summary.
Progress is recorded in ``<state_dir>/demo.json``: a completed demo only prints the summary
again, and a run interrupted after producing resumes at step 3 instead of sending the files a
second time (``--reset`` starts over).
"""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matchstream.config import Config, project_root
from matchstream.db import connect
from matchstream.errors import MatchstreamError
from matchstream.ml.trainer_link import stop_trainer

__all__ = ["DemoError", "DemoOptions", "run_demo", "summary"]

DATABASE = "speed_dating"
# Every pipeline of sql/10_pipelines.sql and the topic it reads.
PIPELINES = {
    "training": "training",
    "scoring": "scoring",
    "outcomes": "outcomes",
    "training_rejects": "training",
    "scoring_rejects": "scoring",
    "outcomes_rejects": "outcomes",
    "alerts_published": "alerts",  # the producer sends nothing there: the alerts publisher does
}
# Pipelines that a run resumed from before sql/ had them may lack: nothing to wait for then.
LATER_PIPELINES = ("training_rejects", "scoring_rejects", "outcomes", "outcomes_rejects",
                   "alerts_published")
SQL_FILES = ("00_schema.sql", "10_pipelines.sql", "20_views.sql")


class DemoError(MatchstreamError):
    """The demo could not finish; says which step and how to look further."""


@dataclass(frozen=True)
class DemoOptions:
    # Training rows arrive over ~21 s (3,209 at 150/s) and scoring rows over ~98 s (975 at
    # 10/s), so scoring starts with the first versions and visibly moves to later ones.
    train_rate: float = 150.0
    score_rate: float = 10.0
    # Each date's true outcome goes to `outcomes` this long after its scoring row was sent: the
    # outcomes of early dates arrive while later ones are still being scored.
    outcome_delay_s: float = 10.0
    # Every n-th outcome of data/score_labels.csv is never sent (0: all are), so the summary
    # shows predictions whose outcome never arrives: 19 of the 975 with 50.
    withhold_every: int = 50
    timeout_s: float = 900.0
    reset: bool = False


def _catalog(conn: Any, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with conn.cursor() as cursor:
        cursor.execute(sql, args)
        return list(cursor.fetchall())


def reset(config: Config, emit: Callable[[str], None]) -> None:
    """Stop and drop the pipelines, the database, the model versions and the topics' data."""
    from matchstream.sqlrunner import ScriptSource, default_variables, run_sources
    from matchstream.stack.broker import PROJECT_TOPICS, Broker

    root = project_root()
    conn = connect(config)
    try:
        exists = _catalog(
            conn, "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (DATABASE,)
        )
    finally:
        conn.close()
    if exists:
        drop = "; ".join(f"DROP PIPELINE IF EXISTS {p}" for p in PIPELINES)
        run_sources(
            [ScriptSource(f"USE {DATABASE}; {drop}; DROP DATABASE {DATABASE}", "<reset>", root)],
            config=config,
            variables=default_variables(config),
            emit=lambda _t: None,
        )
    model_dir = Path(default_variables(config)["MODEL_DIR"])
    stop_trainer(model_dir)  # its versions are about to go; a new one starts with the next batch
    shutil.rmtree(model_dir, ignore_errors=True)
    broker = Broker(config)
    broker.delete_topics(PROJECT_TOPICS)
    broker.ensure_topics(PROJECT_TOPICS, config.topic_partitions)
    (config.state_dir / "demo.json").unlink(missing_ok=True)
    emit("reset: pipelines, database speed_dating, model versions and topics dropped")


def _wait_for_cursors(
    config: Config,
    targets: dict[str, dict[int, int]],  # topic -> partition -> end offset
    timeout_s: float,
    emit: Callable[[str], None],
) -> None:
    from matchstream.engine.catalog import CATALOG_SCHEMA

    deadline = time.monotonic() + timeout_s
    last_report = 0.0
    conn = connect(config)
    try:
        while True:
            behind = {}
            for pipeline, topic in PIPELINES.items():
                ends = targets.get(topic, {})
                state = _catalog(
                    conn,
                    f"SELECT STATE FROM `{CATALOG_SCHEMA}`.PIPELINES "
                    "WHERE DATABASE_NAME = %s AND PIPELINE_NAME = %s",
                    (DATABASE, pipeline),
                )
                if not state and pipeline in LATER_PIPELINES:
                    continue  # a run resumed from before sql/ had it: nothing to wait for
                rows = _catalog(
                    conn,
                    f"SELECT SOURCE_PARTITION_ID, CURSOR_OFFSET FROM `{CATALOG_SCHEMA}`."
                    "PIPELINES_CURSORS WHERE DATABASE_NAME = %s AND PIPELINE_NAME = %s",
                    (DATABASE, pipeline),
                )
                cursors = {int(p): int(c) for p, c in rows}
                missing = sum(max(0, end - cursors.get(p, 0)) for p, end in ends.items())
                if missing:
                    behind[pipeline] = missing
                if state and state[0][0] == "Error":
                    raise DemoError(
                        f"pipeline {pipeline} is in state Error: see `matchstream sql -e "
                        f'"SELECT * FROM {CATALOG_SCHEMA}.PIPELINES_ERRORS WHERE PIPELINE_NAME = '
                        f"'{pipeline}' ORDER BY ERROR_UNIX_TIMESTAMP DESC LIMIT 3\"` "
                        "(README: Troubleshooting)"
                    )
            if not behind:
                return
            if time.monotonic() > deadline:
                raise DemoError(
                    f"pipelines still behind after {timeout_s:.0f} s: {behind} "
                    "messages not loaded yet"
                )
            if time.monotonic() - last_report > 5:
                emit(
                    "waiting for the pipelines: "
                    + ", ".join(f"{p} {n} messages behind" for p, n in behind.items())
                )
                last_report = time.monotonic()
            conn.commit()  # a fresh snapshot for the next look
            time.sleep(0.5)
    finally:
        conn.close()


class OutcomeSchedule:
    """When each outcome is due: the moment its scoring row was sent plus the delay.

    The scoring producer reports every row it sends (``scored``); the outcomes producer waits in
    ``wait_until_due`` for the row of the same id. An id that scoring never sends (a row the
    producer rejected) is due at once when scoring has finished, so the wait cannot hang.
    """

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self._sent_at: dict[bytes, float] = {}
        self._scoring_over = False
        self._changed = threading.Condition()

    def scored(self, key: bytes) -> None:
        with self._changed:
            self._sent_at[key] = time.monotonic()
            self._changed.notify_all()

    def scoring_finished(self) -> None:
        with self._changed:
            self._scoring_over = True
            self._changed.notify_all()

    def wait_until_due(self, key: bytes) -> None:
        with self._changed:
            self._changed.wait_for(lambda: key in self._sent_at or self._scoring_over)
            sent_at = self._sent_at.get(key)
        if sent_at is not None:
            time.sleep(max(0.0, sent_at + self.delay_s - time.monotonic()))


def outcomes_to_send(labels: Path, into: Path, withhold_every: int) -> tuple[int, int]:
    """Write ``labels`` to ``into`` without every ``withhold_every``-th data row (the 50th,
    100th, ... with 50; none with 0); returns (rows written, rows withheld)."""
    with open(labels, newline="") as source, open(into, "w", newline="") as target:
        reader, writer = csv.reader(source), csv.writer(target, lineterminator="\n")
        writer.writerow(next(reader))
        kept = withheld = 0
        for number, row in enumerate(reader, start=1):
            if withhold_every and number % withhold_every == 0:
                withheld += 1
                continue
            writer.writerow(row)
            kept += 1
    return kept, withheld


def run_demo(config: Config, options: DemoOptions, emit: Callable[[str], None] = print) -> str:
    """Steps 1-4 of the module docstring; returns the summary text."""
    root = project_root()
    marker = config.state_dir / "demo.json"
    if options.reset:
        reset(config, emit)
    progress = _read_marker(marker)
    if progress.get("phase") == "done":
        emit("the demo already ran on this stack (matchstream demo --reset runs it again)")
        return summary(config)

    started = time.monotonic()
    alerts = _AlertsThread(config, emit)
    if progress.get("phase") == "produced":
        # A run that sent the files and then stopped (timeout, Ctrl-C, a pipeline in Error):
        # sending them again would train on every row twice, so only the waiting is resumed.
        emit("the files were already produced by an earlier run; waiting for the pipelines")
        targets = {
            t: {int(p): int(o) for p, o in ends.items()}
            for t, ends in progress["end_offsets"].items()
        }
        alerts.start()
    else:
        targets = _apply_and_produce(config, options, root, emit, on_applied=alerts.start)
        _write_marker(marker, {"phase": "produced", "end_offsets": targets})

    try:
        _wait_for_cursors(config, targets, options.timeout_s, emit)
    finally:
        alerts.stop()
    alerts.finish()
    elapsed = time.monotonic() - started
    _write_marker(marker, {"phase": "done", "end_offsets": targets, "seconds": round(elapsed, 1)})
    emit(f"demo finished in {elapsed:.0f} s")
    return summary(config)


def _read_marker(marker: Path) -> dict[str, Any]:
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_marker(marker: Path, data: dict[str, Any]) -> None:
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps(data) + "\n")
    tmp.replace(marker)


class _AlertsThread:
    """The alerts publisher for the length of the demo, then a last round and the reload."""

    def __init__(self, config: Config, emit: Callable[[str], None]) -> None:
        from matchstream.alerts import AlertsOptions

        self.config, self.emit = config, emit
        self.options = AlertsOptions()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self.published = 0

    def _present(self) -> bool:
        conn = connect(self.config)
        try:
            from matchstream.engine.catalog import CATALOG_SCHEMA

            return bool(_catalog(
                conn, f"SELECT 1 FROM `{CATALOG_SCHEMA}`.PIPELINES WHERE DATABASE_NAME = %s "
                "AND PIPELINE_NAME = %s", (DATABASE, self.options.pipeline)))
        finally:
            conn.close()

    def _run(self) -> None:
        from matchstream.alerts import run_publisher

        try:
            self.published += run_publisher(self.config, self.options, stop=self._stop,
                                            emit=lambda _t: None)
        except BaseException as exc:  # reported by finish(), in the caller's thread
            self._failure = exc

    def start(self) -> None:
        if not self._present():
            self.emit(f"no pipeline {self.options.pipeline}: this database predates alerts on "
                      "Kafka (`matchstream demo --reset` runs the demo with them)")
            return
        self._thread = threading.Thread(target=self._run, name="alerts", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.options.catch_up_timeout_s + 60)

    def finish(self) -> None:
        """After the pipelines caught up: the last alerts out, and alerts_published reloaded."""
        from matchstream.alerts import AlertsError, catch_up, run_publisher

        if self._thread is None:
            return
        if self._failure is not None:
            raise DemoError(f"the alerts publisher failed: {self._failure}") from self._failure
        try:
            self.published += run_publisher(self.config, self.options, once=True,
                                            emit=lambda _t: None)
            conn = connect(self.config, DATABASE)
            try:
                catch_up(conn, self.config, self.options)
            finally:
                conn.close()
        except AlertsError as exc:
            raise DemoError(f"the alerts publisher failed: {exc}") from exc
        self.emit(f"published {self.published} alerts to topic {self.options.topic} "
                  "(matchstream alerts keeps publishing new ones)")


def _apply_and_produce(
    config: Config, options: DemoOptions, root: Path, emit: Callable[[str], None],
    on_applied: Callable[[], None] = lambda: None,
) -> dict[str, dict[int, int]]:
    """Steps 1 and 2; returns each topic's offsets after what was sent."""
    from matchstream.ml.spec import FeatureSpec
    from matchstream.producer import ProduceReport, produce_files
    from matchstream.sqlrunner import ScriptSource, default_variables, run_sources

    variables = default_variables(config)
    # Both transforms share this directory; scoring waits in it for the first version.
    Path(variables["MODEL_DIR"]).mkdir(parents=True, exist_ok=True)
    sources = [ScriptSource.from_file(root / "sql" / name) for name in SQL_FILES]
    sources.append(
        ScriptSource(
            f"USE {DATABASE}; "
            + "; ".join(f"START PIPELINE IF NOT RUNNING {p}" for p in PIPELINES),
            "<demo>",
            root,
        )
    )
    run_sources(sources, config=config, variables=variables, emit=lambda _t: None)
    emit("applied sql/00_schema.sql, 10_pipelines.sql, 20_views.sql; pipelines started")
    on_applied()

    spec = FeatureSpec.load(variables["FEATURES"])
    reports: dict[str, ProduceReport] = {}
    failures: list[BaseException] = []
    schedule = OutcomeSchedule(options.outcome_delay_s)

    def send(topic: str, path: Path, rate: float | None, **hooks: Any) -> None:
        try:
            reports[topic] = produce_files(
                topic,
                [path],
                bootstrap=config.kafka_bootstrap,
                spec=spec,
                role=topic,
                rate=rate,
                progress=False,
                **hooks,
            )
        except BaseException as exc:  # re-raised below, in the caller's thread
            failures.append(exc)
        finally:
            if topic == "scoring":
                schedule.scoring_finished()  # no outcome waits for a row that will not come

    with tempfile.TemporaryDirectory(prefix="matchstream-demo-") as scratch:
        outcomes_file = Path(scratch) / "outcomes.csv"
        sent_outcomes, withheld = outcomes_to_send(
            root / "data" / "score_labels.csv", outcomes_file, options.withhold_every
        )
        threads = [
            threading.Thread(
                target=send, args=("training", root / "data" / "train.csv", options.train_rate)
            ),
            threading.Thread(
                target=send,
                args=("scoring", root / "data" / "score.csv", options.score_rate),
                kwargs={"on_send": schedule.scored},
            ),
            threading.Thread(
                target=send,
                args=("outcomes", outcomes_file, None),
                kwargs={"pace": schedule.wait_until_due},
            ),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if failures:
        raise failures[0]
    for topic, report in reports.items():
        emit(f"produced {report.sent} rows to {topic} (rejected {len(report.rejected)})")
    which = (
        f"1 in {options.withhold_every}: data rows {options.withhold_every}, "
        f"{2 * options.withhold_every}, ... of data/score_labels.csv"
        if options.withhold_every
        else "none"
    )
    emit(
        f"outcomes: {sent_outcomes} sent, each {options.outcome_delay_s:g} s after its scoring "
        f"row; {withheld} never sent ({which}), so their predictions stay awaiting_outcome"
    )
    return {t: r.end_offsets for t, r in reports.items()}


def _has_table(conn: Any, name: str) -> bool:
    return bool(
        _catalog(
            conn,
            "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
            (DATABASE, name),
        )
    )


def summary(config: Config) -> str:
    """The demo's summary, from SQL only (the same views a user queries)."""
    from matchstream.sqlrunner import format_table

    conn = connect(config, DATABASE)
    try:

        def rows(sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
            with conn.cursor() as cursor:
                cursor.execute(sql)
                return [d[0] for d in cursor.description], list(cursor.fetchall())

        def table(sql: str) -> str:
            return format_table(*rows(sql))

        # A database from before a table existed (the summary of a finished demo is printed
        # again without applying sql/) lacks it: its lines are left out.
        counted = ["training_metrics", "predictions", "outcomes", "rejected_rows"]
        present = [t for t in counted if _has_table(conn, t)]
        parts = [
            "Rows loaded per table:",
            table(
                " UNION ALL ".join(
                    f"SELECT '{t}' AS `table`, COUNT(*) AS `rows` FROM {t}" for t in present
                )
            ),
            "Model versions (one per training batch) and the versions scoring used:",
            table(
                "SELECT (SELECT COUNT(*) FROM training_metrics) AS versions_trained, "
                "COUNT(DISTINCT model_version) AS versions_used_by_scoring, "
                "MIN(model_version) AS first_used, MAX(model_version) AS last_used "
                "FROM predictions"
            ),
            # Batches follow the producer (a few dozen rows each at 150 rows/s), so one line per
            # version would be long and each line noisy: the rows are pooled per 500 learnt.
            "Accuracy and AUC per 500 rows learnt (each batch measured before its version "
            "learnt it; AUC is the batches' mean, weighted by rows):",
            table(
                "SELECT MIN(model_version) AS versions_from, MAX(model_version) AS versions_to, "
                "MAX(rows_seen_total) AS rows_seen_total, "
                "ROUND(SUM(accuracy * `rows`) / SUM(`rows`), 3) AS accuracy, "
                "ROUND(SUM(accuracy_baseline * `rows`) / SUM(`rows`), 3) AS baseline, "
                "ROUND(SUM(auc * `rows`) / SUM(CASE WHEN auc IS NULL THEN 0 ELSE `rows` END), 3)"
                " AS auc "
                "FROM training_metrics GROUP BY FLOOR((rows_seen_total - `rows`) / 500) "
                "ORDER BY versions_from"
            ),
        ]
        if _has_table(conn, "drift_alerts"):
            parts += _drift_parts(rows, table)
        if _has_table(conn, "alerts_published") and _has_table(conn, "alerts_to_publish"):
            parts += [
                "Alerts on Kafka (match_alerts, the rows on the `alerts` topic as "
                "alerts_published loaded them back, and those not published yet):",
                table(
                    "SELECT (SELECT COUNT(*) FROM match_alerts) AS match_alerts, "
                    "(SELECT COUNT(*) FROM alerts_published) AS on_alerts_topic, "
                    "(SELECT COUNT(*) FROM alerts_to_publish) AS not_yet_published"
                ),
            ]
        if "outcomes" in present:
            parts += _live_parts(rows, table)
        else:
            parts.append(
                "No table outcomes: this database predates streamed outcomes "
                "(`matchstream demo --reset` runs the demo with them)."
            )
    finally:
        conn.close()
    return "\n".join(parts)


def _percent(value: Any) -> str:
    return f"{100 * float(value):.0f}%"


def threshold_trade(precision: Any, recall: Any, always_no_match: Any) -> str:
    """One sentence saying what the decision threshold buys and costs, from the live figures.

    >>> print(threshold_trade(0.477, 0.471, 0.843))  # doctest: +NORMALIZE_WHITESPACE
    Each version's threshold is chosen to maximise F1 on its training batch: live, it catches
    47% of the real matches and 48% of its predicted matches are real; always answering "no
    match" would be 84% accurate and catch none.
    """
    if recall is None or always_no_match is None:
        return "No outcome of a real match has come in yet: the threshold cannot be judged."
    real = (
        f"{_percent(precision)} of its predicted matches are real"
        if precision is not None
        else "it predicted no match among them"
    )
    return (
        "Each version's threshold is chosen to maximise F1 on its training batch: live, it "
        f"catches {_percent(recall)} of the real matches and {real}; always answering "
        f'"no match" would be {_percent(always_no_match)} accurate and catch none.'
    )


def _drift_parts(rows: Callable[[str], tuple[list[str], list[tuple[Any, ...]]]],
                 table: Callable[[str], str]) -> list[str]:
    """The summary's lines on drift: how many alarms of each kind, and the strongest."""
    _, ((alarms,),) = rows("SELECT COUNT(*) FROM drift_alerts")
    head = ("Drift alarms (drift_alerts: a feature's PSI against what the model had learnt "
            "reached 0.25, or Page-Hinkley saw the prequential loss rise):")
    if not alarms:
        return [head, "none"]
    return [
        head,
        table(
            "SELECT kind, COUNT(*) AS alarms, MIN(model_version) AS first_version, "
            "MAX(model_version) AS last_version, ROUND(MAX(score), 3) AS highest_score "
            "FROM drift_alerts GROUP BY kind ORDER BY kind"
        ),
        "The strongest feature alarms (the features that moved most, with their PSI):",
        table(
            "SELECT model_version, rows_seen_total, ROUND(score, 3) AS psi_max, detail "
            "FROM drift_alerts WHERE kind = 'feature' ORDER BY score DESC, model_version "
            "LIMIT 3"
        ),
    ]


def _live_parts(rows: Callable[[str], tuple[list[str], list[tuple[Any, ...]]]],
                table: Callable[[str], str]) -> list[str]:
    """The summary's lines on live quality: predictions against the outcomes come in so far."""
    _, ((judged, awaiting, precision, recall, always_no_match),) = rows(
        "SELECT scored, awaiting_outcome, `precision`, recall, accuracy_baseline "
        "FROM live_scoring_accuracy"
    )
    return [
        "Live scoring against the true outcomes that have come in (AUC: how often a real match "
        "got a higher probability than a non-match, 0.5 = chance):",
        table(
            "SELECT scored AS judged, awaiting_outcome, ROUND(auc, 3) AS auc, "
            "ROUND(accuracy, 3) AS accuracy, ROUND(accuracy_baseline, 3) AS always_no_match, "
            "ROUND(`precision`, 3) AS `precision`, ROUND(recall, 3) AS recall, "
            "model_versions_used FROM live_scoring_accuracy"
        ),
        threshold_trade(precision, recall, always_no_match),
        f"{awaiting} predictions await their outcome (counted in awaiting_outcome, not judged); "
        f"{judged} are judged.",
        "The five versions that scored the most dates, live (live_quality_per_version):",
        table(
            "SELECT model_version, predictions, awaiting_outcome, ROUND(auc, 3) AS auc, "
            "ROUND(accuracy, 3) AS accuracy, ROUND(`precision`, 3) AS `precision`, "
            "ROUND(recall, 3) AS recall FROM (SELECT * FROM live_quality_per_version "
            "ORDER BY predictions DESC, model_version DESC LIMIT 5) busiest "
            "ORDER BY model_version"
        ),
        "How old the scoring model was (prediction_staleness; seconds since its version was "
        "trained, versions published before the prediction):",
        table(
            "SELECT ROUND(AVG(model_age_seconds), 1) AS mean_age_s, "
            "ROUND(MAX(model_age_seconds), 1) AS max_age_s, "
            "ROUND(AVG(versions_behind), 1) AS mean_versions_behind, "
            "MAX(versions_behind) AS max_versions_behind FROM prediction_staleness"
        ),
        "Top predicted matches:",
        table(
            "SELECT p.id, ROUND(p.probability, 3) AS probability, p.model_version, "
            "o.`match` AS actual FROM predictions p LEFT JOIN outcomes o ON o.id = p.id "
            "ORDER BY p.probability DESC, p.id LIMIT 5"
        ),
    ]

"""The main job: both pipelines on the speed-dating data, end to end, and a short summary.

Steps (``run_demo``):
  1. Apply ``sql/`` in order (schema, pipelines, views) and start both pipelines and their reject
     pipelines (``training_rejects``, ``scoring_rejects``: the bad messages, ``rejected_rows``).
  2. Produce ``data/train.csv`` to ``training`` at a steady rate while ``data/score.csv`` goes to
     ``scoring`` at the same time, so scoring uses newer and newer model versions.
  3. Wait until every pipeline's cursors reach the offsets the producer was acknowledged for on
     its topic (not a sleep); a pipeline in state Error ends the wait with its latest error.
  4. Load ``data/score_labels.csv`` into ``score_labels`` and print the summary.
Progress is recorded in ``<state_dir>/demo.json``: a completed demo only prints the summary
again, and a run interrupted after producing resumes at step 3 instead of sending the files a
second time (``--reset`` starts over).
"""

from __future__ import annotations

import csv
import json
import shutil
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
    "training_rejects": "training",
    "scoring_rejects": "scoring",
}
REJECT_PIPELINES = ("training_rejects", "scoring_rejects")
SQL_FILES = ("00_schema.sql", "10_pipelines.sql", "20_views.sql")


class DemoError(MatchstreamError):
    """The demo could not finish; says which step and how to look further."""


@dataclass(frozen=True)
class DemoOptions:
    # Training rows arrive in ~21 s; each 500-row batch then takes the training pipeline several
    # seconds (a fresh TensorFlow process per batch), so training spans about a minute and a
    # half. Scoring is spread over that time (975 rows at 10/s) so it visibly moves from one
    # model version to the next.
    train_rate: float = 150.0
    score_rate: float = 10.0
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
                if not state and pipeline in REJECT_PIPELINES:
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


def _load_labels(config: Config, path: Path) -> int:
    with open(path, newline="") as handle:
        rows = [(int(r["id"]), int(r["match"])) for r in csv.DictReader(handle)]
    conn = connect(config, DATABASE)
    try:
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO score_labels (id, `match`) VALUES (%s, %s) "
                "ON DUPLICATE KEY UPDATE `match` = VALUES(`match`)",
                rows,
            )
    finally:
        conn.close()
    return len(rows)


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
    if progress.get("phase") == "produced":
        # A run that sent both files and then stopped (timeout, Ctrl-C, a pipeline in Error):
        # sending them again would train on every row twice, so only the waiting is resumed.
        emit("both files were already produced by an earlier run; waiting for the pipelines")
        targets = {
            t: {int(p): int(o) for p, o in ends.items()}
            for t, ends in progress["end_offsets"].items()
        }
    else:
        targets = _apply_and_produce(config, options, root, emit)
        _write_marker(marker, {"phase": "produced", "end_offsets": targets})

    _wait_for_cursors(config, targets, options.timeout_s, emit)
    labels = _load_labels(config, root / "data" / "score_labels.csv")
    emit(f"loaded {labels} rows into score_labels")
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


def _apply_and_produce(
    config: Config, options: DemoOptions, root: Path, emit: Callable[[str], None]
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

    spec = FeatureSpec.load(variables["FEATURES"])
    reports: dict[str, ProduceReport] = {}
    failures: list[BaseException] = []

    def send(topic: str, path: Path, rate: float) -> None:
        try:
            reports[topic] = produce_files(
                topic,
                [path],
                bootstrap=config.kafka_bootstrap,
                spec=spec,
                role=topic,
                rate=rate,
                progress=False,
            )
        except BaseException as exc:  # re-raised below, in the caller's thread
            failures.append(exc)

    threads = [
        threading.Thread(
            target=send, args=("training", root / "data" / "train.csv", options.train_rate)
        ),
        threading.Thread(
            target=send, args=("scoring", root / "data" / "score.csv", options.score_rate)
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

        def table(sql: str) -> str:
            with conn.cursor() as cursor:
                cursor.execute(sql)
                return format_table([d[0] for d in cursor.description], cursor.fetchall())

        # A database from before rejected_rows existed (the summary of a finished demo is
        # printed again without applying sql/) has no such table: the line is left out.
        rejects = (
            " UNION ALL SELECT 'rejected_rows', COUNT(*) FROM rejected_rows"
            if _has_table(conn, "rejected_rows")
            else ""
        )
        parts = [
            "Rows loaded per table:",
            table(
                "SELECT 'training_metrics' AS `table`, COUNT(*) AS `rows` FROM training_metrics "
                "UNION ALL SELECT 'predictions', COUNT(*) FROM predictions "
                "UNION ALL SELECT 'score_labels', COUNT(*) FROM score_labels" + rejects
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
            "Live scoring accuracy against the true outcomes:",
            table(
                "SELECT scored, ROUND(accuracy, 3) AS accuracy, "
                "ROUND(accuracy_baseline, 3) AS always_no_match, ROUND(`precision`, 3) AS "
                "`precision`, ROUND(recall, 3) AS recall, model_versions_used "
                "FROM live_scoring_accuracy"
            ),
            "Top predicted matches:",
            table(
                "SELECT p.id, ROUND(p.probability, 3) AS probability, p.model_version, "
                "l.`match` AS actual FROM predictions p LEFT JOIN score_labels l ON l.id = p.id "
                "ORDER BY p.probability DESC, p.id LIMIT 5"
            ),
        ]
    finally:
        conn.close()
    return "\n".join(parts)

"""``matchstream dashboard`` and ``matchstream report`` in a real headless Chromium.

A private database gets the demo's schema and views (sql/00_schema.sql, sql/20_views.sql) and
known rows: five model versions, forty predictions over a few seconds (with silent seconds),
thirty outcomes, and pipeline catalog rows written with the engine's own catalog functions (two
pipelines, their cursors, batches and one error with its partition and offsets). The real CLI
serves or writes the page; the browser loads it and the test reads what the charts were given
(``window.matchstreamDashboard``) and what the page says, and compares both with SQL on the same
database and with the rows inserted. Screenshots go to test-artifacts/ at the repository root.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pymysql
import pytest

from matchstream.config import Config
from matchstream.db import connect
from matchstream.ddl import split_statements
from matchstream.engine import catalog
from matchstream.stack.ports import free_port

from ..conftest import REPO
from .browser import Chromium, Page

pytestmark = [pytest.mark.integration]

ARTIFACTS = REPO / "test-artifacts"
BASE = datetime(2026, 12, 1, 12, 0, 0)  # the tables hold UTC
VERSIONS = 5
PREDICTIONS = 40
JUDGED = 30
TOPIC = "dash-scoring"


def training_row(v: int) -> dict[str, Any]:
    return {"model_version": v, "rows": 100, "positives": 20, "accuracy": 0.70 + 0.03 * v,
            "accuracy_baseline": 0.8, "auc": 0.60 + 0.05 * v, "f1": 0.30 + 0.04 * v,
            "threshold": 0.5, "rows_seen_total": 100 * v,
            "trained_at": BASE + timedelta(seconds=v), "train_seconds": 0.1, "skipped_rows": 0,
            "feature_drift": 1 if v == 3 else 0, "psi_max": 0.3 if v == 3 else 0.1,
            "psi_worst": "attr 0.300" if v == 3 else None, "error_drift": 0}


def scored_at(i: int) -> datetime:
    """Four predictions a second for ids 1-36, then four more 20 s later: silent seconds."""
    second = i // 4 if i <= 36 else 30
    return BASE + timedelta(seconds=60 + second, microseconds=1000 * i)


class Dash:
    """The private database, its rows and a session on it."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.database = f"dash_{uuid.uuid4().hex[:10]}"
        self.conn = connect(config)

    def db(self, text: str, params: Any = None) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cursor:
            cursor.execute(text, params)
            return list(cursor.fetchall())

    def insert(self, table: str, row: dict[str, Any]) -> None:
        names = ", ".join(f"`{k}`" for k in row)
        marks = ", ".join(["%s"] * len(row))
        self.db(f"INSERT INTO `{self.database}`.`{table}` ({names}) VALUES ({marks})",
                list(row.values()))

    def create(self) -> None:
        for name in ("00_schema.sql", "20_views.sql"):
            text = re.sub(r"\bspeed_dating\b", self.database,
                          (REPO / "sql" / name).read_text(encoding="utf-8"))
            for stmt in split_statements(text, name):
                self.db(stmt.text)
        for v in range(1, VERSIONS + 1):
            self.insert("training_metrics", training_row(v))
        for i in range(1, PREDICTIONS + 1):
            probability = i / (PREDICTIONS + 1)
            self.insert("predictions", {"id": i, "probability": probability,
                                        "predicted": int(probability >= 0.5),
                                        "model_version": 1 + i % VERSIONS,
                                        "scored_at": scored_at(i)})
        for i in range(1, JUDGED + 1):  # ids 31-40 await their outcome
            self.insert("outcomes", {"id": i, "match": int(i % 3 == 0),
                                     "loaded_at": BASE + timedelta(seconds=100 + 2 * i)})
        self._catalog()

    def _catalog(self) -> None:
        catalog.ensure_catalog(self.conn)
        now = time.time()
        for name, state, cursor, latest in (("scoring", catalog.State.ERROR, 40, 52),
                                            ("training", catalog.State.RUNNING, 500, 500)):
            topic = TOPIC if name == "scoring" else "dash-training"
            catalog.insert_pipeline(
                self.conn, database=self.database, name=name,
                definition=f"CREATE PIPELINE `{name}` AS LOAD DATA KAFKA '127.0.0.1:9092/{topic}' "
                "INTO TABLE `predictions`",
                sql_dir=str(REPO / "sql"), transform_path=None,
                config_json={"connection_string": f"127.0.0.1:9092/{TOPIC}"
                             if name == "scoring" else "127.0.0.1:9092/dash-training"})
            self.db(f"UPDATE `{catalog.CATALOG_SCHEMA}`.`pipeline_registry` SET STATE = %s "
                    "WHERE DATABASE_NAME = %s AND PIPELINE_NAME = %s",
                    [state, self.database, name])
            catalog.put_cursor(self.conn, self.database, name, 0, cursor=cursor, earliest=0,
                               latest=latest)
            for batch in range(1, 4):
                catalog.insert_batch_row(
                    self.conn, DATABASE_NAME=self.database, PIPELINE_NAME=name,
                    BATCH_ID=batch, BATCH_STATE="Succeeded", BATCH_ROWS_WRITTEN=10,
                    BATCH_TIME=0.25 * batch + (0.5 if name == "training" else 0.0),
                    BATCH_START_UNIX_TIMESTAMP=now - 30 + 5 * batch,
                    BATCH_PARTITION_STATE="Succeeded", BATCH_SOURCE_PARTITION_ID="0",
                    BATCH_EARLIEST_OFFSET=10 * batch, BATCH_LATEST_OFFSET=10 * batch + 10)
        self.add_error("bad row in message 3: not a number in column 'age'", batch=4)

    def add_error(self, message: str, *, batch: int) -> None:
        catalog.insert_error(self.conn, database=self.database, name="scoring",
                             error_type="Error", code=1262, message=message, kind="Transform",
                             stderr="score.py: message 3: age='x'", batch_id=batch,
                             partition=0, start=40, end=52)

    def drop(self) -> None:
        for table in catalog.CATALOG_TABLES:
            self.db(f"DELETE FROM `{catalog.CATALOG_SCHEMA}`.`{table}` WHERE DATABASE_NAME = %s",
                    [self.database])
        self.db(f"DROP DATABASE IF EXISTS `{self.database}`")
        self.conn.close()


@pytest.fixture
def dash(stack: Config) -> Iterator[Dash]:
    d = Dash(stack)
    try:
        d.create()
        yield d
    finally:
        d.drop()


def start_dashboard(cli_env: dict[str, str], database: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "matchstream.cli", "dashboard", "--port", str(port),
         "-D", database], env=cli_env, cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()  # printed once the socket listens
    assert f"http://127.0.0.1:{port}/" in line, (line, process.stderr.read()
                                                 if process.poll() is not None else "")
    return process, f"http://127.0.0.1:{port}/"


@pytest.fixture
def dashboard(dash: Dash, cli_env: dict[str, str]) -> Iterator[str]:
    process, url = start_dashboard(cli_env, dash.database)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Chromium]:
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    chromium = Chromium(profile)
    try:
        yield chromium
    finally:
        chromium.close()


def charts(page: Page) -> dict[str, Any]:
    """What each chart was given to draw (uPlot's data: x, then one array per series)."""
    return dict(page.evaluate(
        "(() => { const c = window.matchstreamDashboard.charts; const out = {};"
        " for (const k in c) { out[k] = {series: c[k].series.map(s => s.label),"
        " data: c[k].data.map(a => Array.from(a))}; } return out; })()"))


def text(page: Page, selector: str) -> str:
    return str(page.evaluate(f"document.querySelector({json.dumps(selector)}).textContent"))


def column(chart: dict[str, Any], label: str) -> list[Any]:
    return list(chart["data"][chart["series"].index(label)])


def utc(when: datetime | str) -> float:
    when = datetime.fromisoformat(when) if isinstance(when, str) else when
    return when.replace(tzinfo=UTC).timestamp()


def assert_page_holds_the_database(page: Page, dash: Dash) -> None:
    got = charts(page)
    training = got["training"]
    expected = dash.db(f"SELECT model_version, auc, accuracy, f1, accuracy_baseline FROM "
                       f"`{dash.database}`.training_metrics ORDER BY model_version")
    assert [tuple(r) for r in zip(*training["data"], strict=True)] == expected
    assert training["series"][1:4] == ["AUC", "accuracy", "F1"]

    minute = got["live_minute"]
    expected = dash.db(f"SELECT minute, auc, accuracy, accuracy_baseline FROM "
                       f"`{dash.database}`.live_quality_per_minute ORDER BY minute")
    assert len(expected) == 2  # outcomes came in over two minutes
    assert [tuple(r) for r in zip(*minute["data"], strict=True)] == [
        (utc(m), a, acc, b) for m, a, acc, b in expected]

    per_version = got["live_version"]
    expected = dash.db(f"SELECT model_version, auc, accuracy, accuracy_baseline FROM "
                       f"`{dash.database}`.live_quality_per_version ORDER BY model_version")
    assert [tuple(r) for r in zip(*per_version["data"], strict=True)] == expected

    # Predictions per second: from the rows inserted, silent seconds drawn as 0.
    counts = Counter(int(utc(scored_at(i))) for i in range(1, PREDICTIONS + 1))
    seconds = list(range(min(counts), max(counts) + 1))
    pps = got["predictions_per_second"]
    assert pps["data"] == [[float(s) for s in seconds], [counts.get(s, 0) for s in seconds]]
    assert 0 in pps["data"][1]
    assert sum(pps["data"][1]) == dash.db(
        f"SELECT COUNT(*) FROM `{dash.database}`.predictions")[0][0]

    batches = got["batch_times"]
    assert batches["series"][1:] == ["scoring", "training"]
    expected_times = dash.db(
        f"SELECT PIPELINE_NAME, BATCH_TIME FROM `{catalog.CATALOG_SCHEMA}`.PIPELINES_BATCHES "
        "WHERE DATABASE_NAME = %s ORDER BY BATCH_START_UNIX_TIMESTAMP", [dash.database])
    drawn = [(name, value) for i, name in enumerate(batches["series"][1:], start=1)
             for value in batches["data"][i] if value is not None]
    assert sorted(drawn) == sorted(expected_times)

    # The tiles say what live_scoring_accuracy and the tables say.
    live = dash.db(f"SELECT scored, awaiting_outcome, accuracy, auc FROM "
                   f"`{dash.database}`.live_scoring_accuracy")[0]
    assert text(page, '[data-tile="live_accuracy"]') == f"{live[2]:.3f}"
    assert text(page, '[data-tile="live_auc"]') == f"{live[3]:.3f}"
    assert text(page, '[data-tile="judged"]') == f"{JUDGED} / {PREDICTIONS - JUDGED}" == (
        f"{live[0]} / {live[1]}")
    assert text(page, '[data-tile="versions_trained"]') == str(VERSIONS)
    assert text(page, '[data-tile="predictions"]') == str(PREDICTIONS)

    # Each pipeline's state, lag (latest offset - cursor) and latest batch time, from the catalog.
    rows = page.evaluate("Array.from(document.querySelectorAll('#pipelines tbody tr')).map("
                         "tr => Array.from(tr.children).map(td => td.textContent))")
    assert [r[:5] for r in rows] == [["scoring", TOPIC, "Error", "12", "0.750"],
                                     ["training", "dash-training", "Running", "0", "1.250"]]
    drift = page.evaluate("Array.from(document.querySelectorAll('#drift tbody tr')).map("
                          "tr => tr.children[0].textContent + ' ' + tr.children[1].textContent)")
    assert drift == ["3 feature"]


def keep(page: Page, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Save a screenshot under test-artifacts/ and name it in the test output (past capture,
    so a passing run shows it too)."""
    shot = page.screenshot(ARTIFACTS / name)
    with capsys.disabled():
        print(f"\nscreenshot: {shot}")


def test_the_page_draws_what_the_database_holds(dash: Dash, dashboard: str, browser: Chromium,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    page = browser.new_page()
    page.open(dashboard)
    page.wait_for("window.matchstreamDashboard.refreshes >= 1", "the first refresh")
    assert_page_holds_the_database(page, dash)

    error = text(page, "#errors li")
    assert f"pipeline scoring, batch 4, {TOPIC}[0]@40..52" in error
    assert "bad row in message 3: not a number in column 'age'" in error
    assert "score.py: message 3: age='x'" in error  # the transform's stderr
    assert text(page, "#problems") == ""
    assert page.evaluate("document.getElementById('problems').hidden") is True
    # Nothing but the dashboard's own address: no CDN, no font service.
    requests = page.requests()
    assert requests and all(u.startswith(dashboard) for u in requests), requests
    assert page.script_errors() == []
    keep(page, "dashboard.png", capsys)


def test_a_row_inserted_in_the_database_shows_up_without_a_reload(
        dash: Dash, dashboard: str, browser: Chromium) -> None:
    page = browser.new_page()
    page.open(dashboard)
    page.wait_for("window.matchstreamDashboard.refreshes >= 1", "the first refresh")
    page.evaluate("window.sameDocument = 'still here'")
    navigations = page.navigations()

    dash.insert("training_metrics", {**training_row(VERSIONS + 1), "auc": 0.987})
    dash.add_error("a newer error", batch=5)
    page.wait_for(f"window.matchstreamDashboard.charts.training.data[0].includes({VERSIONS + 1})",
                  "the new model version in the training chart")
    assert column(charts(page)["training"], "AUC")[-1] == 0.987
    page.wait_for("document.querySelector('#errors li').textContent.includes('a newer error')",
                  "the new error first in the list")
    assert text(page, '[data-tile="versions_trained"]') == str(VERSIONS + 1)

    # The live-quality views rank every prediction: while no prediction or outcome changed,
    # their rows are reused; an outcome coming in is seen at the next refresh.
    page.wait_for("window.matchstreamDashboard.snapshot.cost.reused.length === 3",
                  "a refresh reusing the unchanged live-quality rows")
    dash.insert("outcomes", {"id": JUDGED + 1, "match": 1, "loaded_at": datetime.now(UTC)
                             .replace(tzinfo=None)})
    page.wait_for(f"document.querySelector('[data-tile=\"judged\"]').textContent === "
                  f"'{JUDGED + 1} / {PREDICTIONS - JUDGED - 1}'", "the new outcome judged")
    live = dash.db(f"SELECT accuracy, auc FROM `{dash.database}`.live_scoring_accuracy")[0]
    assert text(page, '[data-tile="live_accuracy"]') == f"{live[0]:.3f}"
    assert text(page, '[data-tile="live_auc"]') == f"{live[1]:.3f}"

    assert page.evaluate("window.sameDocument") == "still here"
    assert page.navigations() == navigations
    assert page.script_errors() == []


def test_a_kept_session_the_server_lost_is_replaced_without_an_error(
        dash: Dash, dashboard: str, browser: Chromium) -> None:
    """The server keeps its sessions between refreshes; one killed on the database side (as by
    a restart or wait_timeout) is noticed before use and replaced, not shown as an error."""
    page = browser.new_page()
    page.open(dashboard)
    page.wait_for("window.matchstreamDashboard.refreshes >= 2", "two refreshes")
    own = dash.db("SELECT CONNECTION_ID()")[0][0]
    kept = [i for (i,) in dash.db("SELECT ID FROM information_schema.PROCESSLIST "
                                  "WHERE DB = %s AND ID <> %s", [dash.database, own])]
    assert kept, "the dashboard keeps no session between refreshes"
    for session in kept:
        dash.db(f"KILL CONNECTION {int(session)}")
    dash.insert("training_metrics", training_row(VERSIONS + 1))
    page.wait_for(f"window.matchstreamDashboard.charts.training.data[0].includes({VERSIONS + 1})",
                  "the new model version after the session was killed")
    assert page.evaluate("window.matchstreamDashboard.refreshesWithErrors") == 0
    assert page.evaluate("window.matchstreamDashboard.failures") == 0
    assert text(page, "#problems") == ""


def test_a_database_error_is_shown_on_the_page_and_the_server_goes_on(
        dash: Dash, cli_env: dict[str, str], browser: Chromium) -> None:
    missing = dash.database + "_missing"
    process, url = start_dashboard(cli_env, missing)
    try:
        page = browser.new_page()
        page.open(url)
        problem = page.wait_for("document.getElementById('problems').textContent",
                                "the error on the page")
        assert f"Unknown database '{missing}'" in problem
        refreshes = page.evaluate("window.matchstreamDashboard.refreshes")
        page.wait_for(f"window.matchstreamDashboard.refreshes > {refreshes}", "another refresh")
        assert process.poll() is None
        # One view dropped: that section says why, the others still come from the database.
        dash.db(f"DROP VIEW `{dash.database}`.live_quality_per_minute")
        process.terminate()
        process.wait(timeout=10)
        process, url = start_dashboard(cli_env, dash.database)
        page.open(url)
        problem = page.wait_for("document.getElementById('problems').textContent",
                                "the dropped view's error")
        assert problem.startswith("live_per_minute: (1146)"), problem
        assert charts(page)["training"]["data"][0] == list(range(1, VERSIONS + 1))
        assert page.script_errors() == []
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_report_is_one_file_that_opens_offline_and_holds_the_numbers(
        dash: Dash, cli_env: dict[str, str], browser: Chromium, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.html"
    done = subprocess.run([sys.executable, "-m", "matchstream.cli", "report", "--out", str(out),
                           "-D", dash.database], env=cli_env, cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}" in done.stdout
    html = out.read_text(encoding="utf-8")
    assert "<script src=" not in html and "<link rel=\"stylesheet\"" not in html
    assert "uPlot" in html  # the library is inside

    page = browser.new_page()
    page.open(out.as_uri())
    page.wait_for("window.matchstreamDashboard && window.matchstreamDashboard.refreshes === 1",
                  "the report drawn")
    assert page.evaluate("window.matchstreamDashboard.mode") == "report"
    assert_page_holds_the_database(page, dash)
    assert "bad row in message 3" in text(page, "#errors li")
    # Offline: the file itself is the only request; it never polls.
    time.sleep(2.5)
    assert page.requests() == [out.as_uri()]
    assert page.script_errors() == []
    keep(page, "report.png", capsys)


def test_the_report_of_a_database_that_cannot_be_read_is_an_error(
        cli_env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    done = subprocess.run([sys.executable, "-m", "matchstream.cli", "report", "--out", str(out),
                           "-D", "no_such_database_here"], env=cli_env, cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "Unknown database 'no_such_database_here'" in done.stderr
    assert not out.exists()


def test_the_dashboard_reads_only(dash: Dash) -> None:
    """Every statement the dashboard runs is a SELECT: run them all as a user that may only
    SELECT, and nothing fails for want of a privilege."""
    from matchstream.dashboard.snapshot import collect

    user, password = f"ro_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    dash.db("CREATE USER %s@'127.0.0.1' IDENTIFIED BY %s", [user, password])
    try:
        dash.db(f"GRANT SELECT ON `{dash.database}`.* TO %s@'127.0.0.1'", [user])
        dash.db(f"GRANT SELECT ON `{catalog.CATALOG_SCHEMA}`.* TO %s@'127.0.0.1'", [user])

        def read_only() -> Any:
            return pymysql.connect(host="127.0.0.1", port=dash.config.db_port, user=user,
                                   password=password, database=dash.database)

        snapshot = collect(lambda: contextlib.closing(read_only()), database=dash.database,
                           catalog=catalog.CATALOG_SCHEMA)
        assert snapshot["errors"] == {}
        assert snapshot["training"]["model_version"] == list(range(1, VERSIONS + 1))
        assert [p["name"] for p in snapshot["pipelines"]] == ["scoring", "training"]
    finally:
        dash.db("DROP USER %s@'127.0.0.1'", [user])

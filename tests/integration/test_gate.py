"""The SingleStore gate on the real stack: SingleStore's monitoring SQL and engine variables
through ``matchstream sql``'s runner, a pipeline following ``SET GLOBAL pipelines_batch_interval``,
refusals before MariaDB sees anything, and the shipped sql/ run as written."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from matchstream.config import Config
from matchstream.engine import catalog
from matchstream.gate import GateRefusal
from matchstream.output import OutputStyle, ResultFormat
from matchstream.sqlrunner import ScriptSource, default_variables, run_sources
from tests.integration.engine import conftest as engine_fixtures
from tests.integration.engine.conftest import EngineHandle, Env, wait_for

pytestmark = pytest.mark.integration

# The engine tests' fixtures (their conftest.py is not seen from this directory).
env_factory, env, engine = engine_fixtures.env_factory, engine_fixtures.env, engine_fixtures.engine

REPO = Path(__file__).resolve().parents[2]
JSON = ResultFormat(OutputStyle.JSON)


def run(config: Config, text: str, database: str | None = None) -> list[dict[str, Any]]:
    """Run ``text`` the way ``matchstream sql --json`` does; the rows of every result set."""
    lines: list[str] = []
    run_sources([ScriptSource(text, "<test>", REPO)], config=config,
                variables=default_variables(config), database=database,
                emit=lines.append, result_format=JSON, note=lambda _t: None)
    return [json.loads(line) for chunk in lines for line in chunk.splitlines()]


@pytest.fixture
def restore_variables(stack_config: Config) -> Iterator[None]:
    """Engine variables are global to the session's catalog: give every later test the
    defaults back."""
    yield
    run(stack_config, "SET GLOBAL pipelines_batch_interval = DEFAULT")
    run(stack_config, f"DELETE FROM `{catalog.CATALOG_SCHEMA}`.`engine_variables`")


def _pipeline(env: Env, name: str, clause: str = "") -> None:
    run(env.config, f"CREATE PIPELINE {name} AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' "
                    f"{clause} INTO TABLE t", env.database)


def test_singlestore_monitoring_sql_reads_the_local_catalog(env: Env) -> None:
    env.db("CREATE TABLE t (v VARCHAR(10))")
    env.produce([b"a", b"b"])
    _pipeline(env, "p")
    run(env.config, "START PIPELINE p FOREGROUND", env.database)
    cursors = run(env.config, "SELECT PIPELINE_NAME, CURSOR_OFFSET FROM "
                              "information_schema.pipelines_cursors "
                              f"WHERE DATABASE_NAME = '{env.database}'")
    assert cursors == [{"PIPELINE_NAME": "p", "CURSOR_OFFSET": 2}]
    every = run(env.config, "SELECT * FROM information_schema.pipelines_cursors")
    assert {"PIPELINE_NAME", "SOURCE_PARTITION_ID", "SUCCESSFUL_CURSOR_OFFSET"} <= set(every[0])
    states = run(env.config, "SELECT PIPELINE_NAME, STATE FROM INFORMATION_SCHEMA.Pipelines "
                             f"WHERE DATABASE_NAME = '{env.database}'")
    assert states == [{"PIPELINE_NAME": "p", "STATE": "Stopped"}]
    # SingleStore's own demo (demo-realtime-digital-marketing) monitors its pipelines this way.
    demo = run(env.config, "SELECT pipeline_name, "
                           f"(config_json::$connection_string LIKE '%{env.topic}') AS ours "
                           "FROM information_schema.pipelines "
                           f"WHERE pipelines.database_name = '{env.database}'")
    # (MariaDB labels a view's column as the view names it: PIPELINE_NAME.)
    assert [{k.lower(): v for k, v in row.items()} for row in demo] == [
        {"pipeline_name": "p", "ours": 1}]


def test_engine_variables_read_and_set_like_singlestore(stack_config: Config,
                                                        restore_variables: None) -> None:
    assert run(stack_config, "SELECT @@pipelines_stop_on_error") == [
        {"@@pipelines_stop_on_error": 1}]
    assert run(stack_config, "SELECT @@GLOBAL.pipelines_batch_interval AS b") == [{"b": 2500}]
    run(stack_config, "SET GLOBAL pipelines_batch_interval = 1234")
    run(stack_config, "SET GLOBAL pipelines_stop_on_error = OFF")
    assert run(stack_config, "SELECT @@pipelines_batch_interval, @@pipelines_stop_on_error") == [
        {"@@pipelines_batch_interval": 1234, "@@pipelines_stop_on_error": 0}]
    shown = run(stack_config, "SHOW VARIABLES LIKE 'pipelines%'")
    assert {"Variable_name": "pipelines_batch_interval", "Value": "1234"} in shown
    assert {"Variable_name": "pipelines_stop_on_error", "Value": "OFF"} in shown
    assert {"Variable_name": "pipelines_max_retries_per_batch_partition", "Value": "4"} in shown


def test_a_pipeline_without_the_clause_follows_set_global(env: Env,
                                                           restore_variables: None) -> None:
    env.db("CREATE TABLE t (v VARCHAR(10))")
    run(env.config, "SET GLOBAL pipelines_batch_interval = 1234")
    _pipeline(env, "follows")
    _pipeline(env, "own", "BATCH_INTERVAL 10")
    rows = {r["PIPELINE_NAME"]: json.loads(r["CONFIG_JSON"]) for r in run(
        env.config, "SELECT PIPELINE_NAME, CONFIG_JSON FROM information_schema.PIPELINES "
                    f"WHERE DATABASE_NAME = '{env.database}'")}
    assert rows["follows"]["batch_interval"] == 1234
    assert rows["own"]["batch_interval"] == 10
    follows = catalog.get_pipeline(env.conn, env.database, "follows")
    assert follows is not None and follows.statement().effective_batch_interval == 1234
    assert follows.statement().batch_interval is None  # SHOW CREATE PIPELINE stays as written
    env.conn.commit()


def test_set_global_reaches_a_running_pipeline(env: Env, engine: EngineHandle,
                                               restore_variables: None) -> None:
    """A long interval keeps an idle pipeline from seeing new data; a short one, SET while it
    runs, lets the same pipeline load it at once."""
    env.db("CREATE TABLE t (v VARCHAR(10))")
    run(env.config, "SET GLOBAL pipelines_batch_interval = 60000")
    _pipeline(env, "p")
    env.produce([b"first"])
    run(env.config, "START PIPELINE p", env.database)
    wait_for(lambda: env.count("t") == 1, what="the first message")
    time.sleep(1.0)  # the runner polls again, finds nothing and waits the 60 s interval
    env.produce([b"second"])
    time.sleep(3.0)
    assert env.count("t") == 1, "the pipeline did not wait pipelines_batch_interval"
    run(env.config, "SET GLOBAL pipelines_batch_interval = 100")
    wait_for(lambda: env.count("t") == 2, timeout=20, what="the second message")
    run(env.config, "STOP PIPELINE p", env.database)


def test_a_refused_statement_never_reaches_mariadb(env: Env) -> None:
    with pytest.raises(GateRefusal) as info:
        run(env.config, "SELECT 1;\nCREATE OR REPLACE VIEW v AS SELECT 1", env.database)
    assert (info.value.source, info.value.line, info.value.col) == ("<test>", 2, 8)
    assert env.db("SELECT COUNT(*) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s",
                  [env.database]) == [(0,)]


def test_shipped_sql_runs_as_written_twice(stack_config: Config) -> None:
    """00_schema and 20_views (idempotent: a second run drops and re-creates the views), then
    every query file, placeholder-free, as written for SingleStore."""
    files = [REPO / "sql" / "00_schema.sql", REPO / "sql" / "20_views.sql"]
    for _ in range(2):
        run_sources([ScriptSource.from_file(p) for p in files], config=stack_config,
                    variables={}, emit=lambda _t: None)
    queries = sorted((REPO / "sql" / "queries").glob("*.sql"))
    ran = run_sources([ScriptSource.from_file(p) for p in queries], config=stack_config,
                      variables={}, emit=lambda _t: None)
    assert ran >= len(queries) * 2


def test_emulated_statements_leave_the_sessions_transaction_alone(env: Env,
                                                                   restore_variables: None
                                                                   ) -> None:
    """SET GLOBAL and catalog reads run beside the session: its open transaction still rolls
    back (the catalog's DDL or a commit on the session would have made the INSERT stick)."""
    env.db("CREATE TABLE tx (a INT)")
    rows = run(env.config, "BEGIN; INSERT INTO tx VALUES (1); "
                           "SELECT COUNT(*) AS n FROM information_schema.PIPELINES; "
                           "SET GLOBAL pipelines_batch_interval = 1500; "
                           "SHOW VARIABLES LIKE 'pipelines_batch%'; "
                           "ROLLBACK; SELECT COUNT(*) AS kept FROM tx", env.database)
    assert rows[-1] == {"kept": 0}
    assert {"Variable_name": "pipelines_batch_interval", "Value": "1500"} in rows

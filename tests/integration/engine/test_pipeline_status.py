"""`matchstream status`'s pipeline table from a real catalog: state, lag, batch time, last error."""

from __future__ import annotations

import subprocess
import sys

import pytest

from matchstream.engine.errors import LoadError
from matchstream.pipeline_status import format_statuses, pipeline_statuses

from .conftest import Env

pytestmark = pytest.mark.integration


def _mine(env: Env) -> dict[str, object]:
    return {s.name: s for s in pipeline_statuses(env.conn) if s.database == env.database}


def test_a_failed_pipeline_shows_its_error_where_and_a_good_one_its_lag(env: Env) -> None:
    env.db("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))")
    env.produce([f"{i}\tn{i}".encode() for i in range(8)])
    env.sql(f"CREATE PIPELINE good AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' "
            "MAX_OFFSETS_PER_BATCH_PARTITION 5 INTO TABLE t")
    env.sql(f"CREATE PIPELINE bad AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' "
            "MAX_RETRIES_PER_BATCH_PARTITION 1 INTO TABLE t (id)")
    before = _mine(env)
    assert before["good"].state == "Stopped" and before["good"].last_error is None

    env.sql("START PIPELINE good FOREGROUND LIMIT 1 BATCHES")  # 5 of the 8 messages
    with pytest.raises(LoadError):
        env.sql("START PIPELINE bad FOREGROUND")  # two fields into one column: row 1 truncated
    env.conn.commit()
    now = _mine(env)
    good, bad = now["good"], now["bad"]
    assert good.batch_seconds is not None and good.batch_seconds > 0
    assert good.lag == 3 and good.state == "Stopped"
    assert bad.last_error is not None and bad.last_error.startswith("[0]@0: ")
    assert "truncated" in bad.last_error
    table = format_statuses(list(pipeline_statuses(env.conn)))
    assert f"{env.database}.bad" in table and "s ago [0]@0:" in table


def test_status_prints_the_pipelines_of_the_stack(env: Env, cli_env) -> None:
    env.db("CREATE TABLE t (id INT)")
    env.sql(f"CREATE PIPELINE shown AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' INTO TABLE t")
    done = subprocess.run([sys.executable, "-m", "matchstream.cli", "status"], env=cli_env,
                          capture_output=True, text=True, timeout=60)
    assert "pipeline" in done.stdout and "last error" in done.stdout, done.stdout
    line = next(x for x in done.stdout.splitlines() if x.startswith(f"{env.database}.shown"))
    assert line.split()[1] == "Stopped"

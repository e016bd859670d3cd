"""Retries as SingleStore 9.x does them ("Pipeline Retry Options"): without a clause, exponential
back-off from the batch interval, capped at ten times it, ``max_retries`` from
MAX_RETRIES_PER_BATCH_PARTITION (else the engine variable); ``RETRY_OPTIONS '{...}'`` in CREATE and
ALTER PIPELINE sets each of them and wins over MAX_RETRIES_PER_BATCH_PARTITION. The waits are
read from the Error rows' timestamps (one per attempt), with short intervals.
"""

from __future__ import annotations

import pytest

from matchstream.engine.errors import LoadError
from matchstream.engine.statements import ResultSet

from .conftest import Env

pytestmark = pytest.mark.integration

# A retry waits its delay, then reads and loads the range again before its Error row: the gap
# between two rows is the delay plus that (a few ms here, more on a loaded machine).
SLACK_S = 1.0


def _failing(env: Env, options: str) -> list[float]:
    """Create a pipeline with ``options`` whose only batch always fails; the gaps in seconds
    between its Error rows after START ... FOREGROUND has given up."""
    env.db("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))")
    env.produce([b"1\ta", b"2"])  # offset 1 lacks a field
    env.sql(f"CREATE PIPELINE p AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' {options} "
            "INTO TABLE t")
    with pytest.raises(LoadError):
        env.sql("START PIPELINE p FOREGROUND")
    stamps = [float(e["ERROR_UNIX_TIMESTAMP"]) for e in env.errors("p")
              if e["ERROR_TYPE"] == "Error"]
    assert env.count("t") == 0
    return [b - a for a, b in zip(stamps, stamps[1:], strict=False)]


def _waited(gaps: list[float], delays: list[float]) -> None:
    assert len(gaps) == len(delays), (gaps, delays)
    for gap, delay in zip(gaps, delays, strict=True):
        assert delay - 0.02 <= gap < delay + SLACK_S, (gaps, delays)


def test_the_default_backs_off_exponentially_from_the_batch_interval(env: Env) -> None:
    gaps = _failing(env, "BATCH_INTERVAL 150 MAX_RETRIES_PER_BATCH_PARTITION 4")
    _waited(gaps, [0.15, 0.3, 0.6])  # 4 attempts; capped at 1.5 s, not reached
    assert gaps[2] > 2.5 * gaps[0]


def test_retry_options_set_interval_cap_and_count_and_win_over_max_retries(env: Env) -> None:
    gaps = _failing(env, "BATCH_INTERVAL 2000 MAX_RETRIES_PER_BATCH_PARTITION 2 RETRY_OPTIONS "
                         """'{"retry_interval": 100, "max_retry_interval": 250, """
                         """"max_retries": 5}'""")
    _waited(gaps, [0.1, 0.2, 0.25, 0.25])


def test_retry_options_without_exponential_wait_the_same_each_time(env: Env) -> None:
    gaps = _failing(env, """RETRY_OPTIONS '{"exponential": false, "retry_interval": 300, """
                         """"max_retries": 3}'""")
    _waited(gaps, [0.3, 0.3])


def test_alter_pipeline_set_retry_options_replaces_them(env: Env) -> None:
    env.db("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))")
    env.sql(f"CREATE PIPELINE p AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' "
            """RETRY_OPTIONS '{"max_retries": 9, "retry_interval": 5000}' INTO TABLE t""")
    env.sql("""ALTER PIPELINE p SET RETRY_OPTIONS '{"max_retries": 2, "retry_interval": 50}'""")
    shown = env.sql("SHOW CREATE PIPELINE p")
    assert isinstance(shown, ResultSet)
    assert """RETRY_OPTIONS '{"retry_interval": 50, "max_retries": 2}'""" in str(shown.rows[0][1])
    env.produce([b"1\ta", b"2"])
    with pytest.raises(LoadError):
        env.sql("START PIPELINE p FOREGROUND")
    errors = [e for e in env.errors("p") if e["ERROR_TYPE"] == "Error"]
    assert len(errors) == 2
    gap = float(errors[1]["ERROR_UNIX_TIMESTAMP"]) - float(errors[0]["ERROR_UNIX_TIMESTAMP"])
    assert 0.03 <= gap < 0.05 + SLACK_S

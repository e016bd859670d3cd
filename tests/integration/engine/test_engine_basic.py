"""Core execution: batches, cursors, catalog views, STOP/START from another session."""

from __future__ import annotations

import pytest

from matchstream.engine import catalog
from matchstream.engine.statements import Message, ResultSet

from .conftest import EngineHandle, Env, wait_for

pytestmark = pytest.mark.integration

CAT = catalog.CATALOG_SCHEMA


def _table(env: Env) -> None:
    env.db("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))")


def test_foreground_loads_everything_once_and_moves_the_cursor(env: Env) -> None:
    _table(env)
    env.produce([f"{i}\tn{i}".encode() for i in range(100)])
    env.sql(f"CREATE PIPELINE p AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' INTO TABLE t")
    result = env.sql("START PIPELINE p FOREGROUND")
    assert isinstance(result, Message) and result.rowcount == 100
    assert env.count("t") == 100
    assert env.cursors("p") == {0: 100}
    assert env.state("p") == "Stopped"
    # Nothing new: a second foreground run loads nothing.
    again = env.sql("START PIPELINE p FOREGROUND")
    assert isinstance(again, Message) and again.rowcount == 0
    summary = env.db(f"SELECT BATCH_STATE, ROWS_STREAMED FROM `{CAT}`.PIPELINES_BATCHES_SUMMARY "
                     "WHERE DATABASE_NAME = %s", [env.database])
    assert summary == [("Succeeded", 100)]


def test_limit_batches_and_max_offsets_per_batch_partition(env: Env) -> None:
    _table(env)
    env.produce([f"{i}\tn{i}".encode() for i in range(25)])
    env.sql(f"CREATE PIPELINE p AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' "
            "MAX_OFFSETS_PER_BATCH_PARTITION 10 INTO TABLE t")
    result = env.sql("START PIPELINE p FOREGROUND LIMIT 2 BATCHES")
    assert isinstance(result, Message) and result.rowcount == 20
    assert env.cursors("p") == {0: 20}
    ranges = env.db(f"SELECT BATCH_EARLIEST_OFFSET, BATCH_LATEST_OFFSET FROM `{CAT}`."
                    "PIPELINES_BATCHES WHERE DATABASE_NAME = %s ORDER BY BATCH_ID",
                    [env.database])
    assert ranges == [(0, 10), (10, 20)]


def test_background_engine_follows_start_stop_and_new_data(env: Env, engine: EngineHandle) -> None:
    _table(env)
    env.produce([f"{i}\tn{i}".encode() for i in range(50)])
    env.sql(f"CREATE PIPELINE p AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' "
            "BATCH_INTERVAL 100 INTO TABLE t")
    assert env.count("t") == 0  # CREATE loads nothing
    env.sql("START PIPELINE p")
    shown = env.sql("SHOW PIPELINES")
    assert isinstance(shown, ResultSet)
    assert shown.columns == (f"Pipelines_in_{env.database}", "State", "Scheduled")
    assert shown.rows == [("p", "Running", "True")]
    wait_for(lambda: env.count("t") == 50, what="first 50 rows")
    env.produce([f"{i}\tn{i}".encode() for i in range(50, 80)])
    wait_for(lambda: env.count("t") == 80, what="rows produced while running")
    env.sql("STOP PIPELINE p")
    env.produce([f"{i}\tn{i}".encode() for i in range(80, 90)])
    wait_for(lambda: env.cursors("p") == {0: 80}, what="cursor at 80")
    import time

    time.sleep(1.0)
    assert env.count("t") == 80  # stopped: nothing more
    env.sql("START PIPELINE p")
    wait_for(lambda: env.count("t") == 90, what="rows after restart")
    state = env.db(f"SELECT STATE FROM `{CAT}`.PIPELINES WHERE DATABASE_NAME = %s",
                   [env.database])
    assert state == [("Running",)]


def test_partitions_are_found_and_run_in_parallel(env_factory, engine: EngineHandle) -> None:
    """The pipeline starts before its topic exists; the partitions are discovered when the topic
    appears. (Tansu cannot add partitions to an existing topic, CreatePartitions is not
    implemented, so discovery is exercised through topic creation.)"""
    env = env_factory(partitions=1)
    _table(env)
    late_topic = env.topic + "-late"
    env.sql(f"CREATE PIPELINE p AS LOAD DATA KAFKA '{env.kafka}/{late_topic}' "
            "BATCH_INTERVAL 100 INTO TABLE t")
    env.sql("START PIPELINE p")
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=env.kafka)
    admin.create_topics([NewTopic(late_topic, num_partitions=3, replication_factor=1)])
    admin.close()
    env.topic = late_topic
    for p in range(3):
        env.produce([f"{p * 1000 + i}\tx".encode() for i in range(40)], partition=p)
    wait_for(lambda: env.count("t") == 120, what="120 rows from 3 partitions")
    assert env.cursors("p") == {0: 40, 1: 40, 2: 40}


def test_max_partitions_per_batch_limits_each_batch(env_factory) -> None:
    env = env_factory(partitions=3)
    _table(env)
    for p in range(3):
        env.produce([f"{p * 1000 + i}\tx".encode() for i in range(10)], partition=p)
    env.sql(f"CREATE PIPELINE p AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' "
            "MAX_PARTITIONS_PER_BATCH 2 INTO TABLE t")
    result = env.sql("START PIPELINE p FOREGROUND LIMIT 1 BATCHES")
    assert isinstance(result, Message) and result.rowcount == 20
    per_batch = env.db(f"SELECT BATCH_ID, NUM_PARTITIONS FROM `{CAT}`.PIPELINES_BATCHES_SUMMARY "
                       "WHERE DATABASE_NAME = %s", [env.database])
    assert [n for _, n in per_batch] == [2]
    env.sql("START PIPELINE p FOREGROUND")
    assert env.count("t") == 30
    assert env.cursors("p") == {0: 10, 1: 10, 2: 10}


@pytest.mark.parametrize("transform", [False, True])
def test_a_pipeline_name_that_looks_like_a_path_never_reaches_one(env: Env,
                                                                 transform: bool) -> None:
    """`x/../y` is a valid quoted name; its work files are named from it without the slashes."""
    _table(env)
    clause = ""
    if transform:
        env.transform("ident.py", "import sys\nfrom matchstream.framing import iter_frames\n"
                      "for v in iter_frames(sys.stdin.buffer):\n"
                      "    sys.stdout.buffer.write(v + b'\\n')\n")
        clause = f"WITH TRANSFORM ('file://{env.sql_dir}/ident.py', '', '') "
    env.produce([f"{i}\tn{i}".encode() for i in range(100)])
    env.sql(f"CREATE PIPELINE `x/../y` AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' {clause}"
            "INTO TABLE t")
    result = env.sql("START PIPELINE `x/../y` FOREGROUND")
    assert isinstance(result, Message) and result.rowcount == 100
    assert env.count("t") == 100
    assert list(env.config.state_dir.rglob("*-p0-0-*")) == []  # no work file left anywhere

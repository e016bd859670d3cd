"""SELECT ... INTO KAFKA against the session's real broker and MariaDB, read back with a
standard client (kafka-python)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient, NewTopic

from matchstream.engine.into_kafka import IntoKafkaError
from matchstream.engine.statements import Message
from matchstream.sqlrunner import ScriptSource, SqlRunError, run_sources

from .conftest import Env

pytestmark = pytest.mark.integration


def consume(env: Env, topic: str, count: int, timeout_s: float = 30.0) -> list[Any]:
    """Every message of ``topic`` from the beginning; waits until ``count`` are there, then
    one more second to see that no more come."""
    consumer = KafkaConsumer(topic, bootstrap_servers=env.kafka, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=1000)
    messages: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            batch = list(consumer)  # until 1 s without a message
            messages.extend(batch)
            if len(messages) >= count and not batch:
                break
    finally:
        consumer.close()
    return sorted(messages, key=lambda m: (m.partition, m.offset))


def new_topic(env: Env, partitions: int = 1) -> str:
    topic = f"out-{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=env.kafka)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        admin.close()
    return topic


def alerts_table(env: Env) -> None:
    env.db("CREATE TABLE scored (id BIGINT PRIMARY KEY, probability DOUBLE, note VARCHAR(40), "
           "scored_at DATETIME(6))")
    env.db("INSERT INTO scored VALUES (1, 0.91, 'tab\\there', '2026-12-02 07:00:00.000001'), "
           "(2, 0.5, NULL, '2026-12-02 07:00:01.250000'), (3, 0.75, 'a,\"b\"', "
           "'2026-12-02 07:00:02.000000')")


def test_each_row_is_one_message_in_the_default_text_format_keyed_by_the_key_column(env: Env):
    alerts_table(env)
    topic = new_topic(env)
    result = env.sql(f"SELECT id AS alert_key, id, probability, note, scored_at FROM scored "
                     f"ORDER BY id INTO KAFKA '{env.kafka}/{topic}' KAFKA KEY alert_key")
    assert isinstance(result, Message) and result.rowcount == 3
    messages = consume(env, topic, 3)
    assert [(m.key, m.value) for m in messages] == [
        (b"1", b"1\t0.91\ttab\\\there\t2026-12-02 07:00:00.000001\n"),
        (b"2", b"2\t0.5\t\\N\t2026-12-02 07:00:01.250000\n"),
        (b"3", b"3\t0.75\ta,\"b\"\t2026-12-02 07:00:02.000000\n"),
    ]


def test_fields_and_lines_options_shape_each_message(env: Env):
    alerts_table(env)
    topic = new_topic(env)
    env.sql(f"SELECT id, note FROM scored ORDER BY id INTO KAFKA '{env.kafka}/{topic}' "
            "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' "
            "LINES TERMINATED BY '}' STARTING BY '{'")
    values = [m.value for m in consume(env, topic, 3)]
    assert values == [b'{1,"tab\there"}', b"{2,\\N}", b'{3,"a,\\"b\\""}']
    assert all(m.key is None for m in consume(env, topic, 3))


def test_matchstream_sql_routes_it_to_the_engine_and_a_pipeline_loads_it_back(env: Env, engine):
    """The statement as `matchstream sql` runs it (never sent to MariaDB as is), and the
    messages are exactly what a pipeline with the same (default) format loads."""
    alerts_table(env)
    topic = new_topic(env)
    notes: list[str] = []
    script = (f"USE `{env.database}`;\n"
              f"SELECT id, probability, note, scored_at FROM scored\n"
              f"INTO KAFKA '{env.kafka}/{topic}';\n")
    ran = run_sources([ScriptSource(script, "alerts.sql", env.sql_dir)], config=env.config,
                      variables={}, emit=notes.append)
    assert ran == 2 and notes[-1] == "Query OK, 3 rows affected"
    env.db("CREATE TABLE copy LIKE scored")
    env.sql(f"CREATE PIPELINE back AS LOAD DATA KAFKA '{env.kafka}/{topic}' INTO TABLE copy")
    env.sql("START PIPELINE back")
    deadline = time.monotonic() + 60
    while env.count("copy") < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert env.db("SELECT * FROM copy ORDER BY id") == env.db("SELECT * FROM scored ORDER BY id")


def test_errors_name_the_topic_the_option_or_the_column(env: Env):
    alerts_table(env)
    topic = new_topic(env)
    endpoint = f"{env.kafka}/{topic}"
    with pytest.raises(IntoKafkaError, match="topic 'no-such-topic' does not exist"):
        env.sql(f"SELECT id FROM scored INTO KAFKA '{env.kafka}/no-such-topic'")
    with pytest.raises(IntoKafkaError, match=r"CONFIG key 'acks' is not supported by the local"):
        env.sql(f"SELECT id FROM scored INTO KAFKA '{endpoint}' CONFIG '{{\"acks\": \"0\"}}'")
    keyed = f"SELECT id, note FROM scored INTO KAFKA '{endpoint}' KAFKA KEY nope"
    with pytest.raises(IntoKafkaError, match=rf"^1:{keyed.index('nope') + 1}: KAFKA KEY column "
                                             r"'nope' is not a column of the query \(its "
                                             r"columns: id, note\)"):
        env.sql(keyed)
    with pytest.raises(IntoKafkaError, match=r"the query failed: ERROR 1146: .*missing"):
        env.sql(f"SELECT id FROM missing INTO KAFKA '{endpoint}'")
    assert consume(env, topic, 0, timeout_s=2) == []  # nothing was produced by any of them


def test_an_unreachable_broker_fails_before_the_query_runs(env: Env, tmp_path: Path):
    alerts_table(env)
    script = f"USE `{env.database}`;\nSELECT id FROM scored INTO KAFKA '127.0.0.1:1/alerts';\n"
    started = time.monotonic()
    with pytest.raises(SqlRunError) as info:
        run_sources([ScriptSource(script, "unreachable.sql", tmp_path)], config=env.config,
                    variables={}, emit=lambda _t: None)
    assert info.value.location == "unreachable.sql:2:1"
    assert "cannot reach Kafka at 127.0.0.1:1" in info.value.message
    assert time.monotonic() - started < 30

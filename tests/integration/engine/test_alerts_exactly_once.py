"""The alerts publisher (matchstream/alerts.py) with the shipped SQL, the real broker and MariaDB:
killed right after a round produced its alerts (fault point ``alerts.after_publish``) and
restarted, every alert id is on the topic exactly once, read back with a standard client."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer

from matchstream.alerts import AlertsError, AlertsOptions, publish_round, publisher_lock
from matchstream.config import ENV_PREFIX, project_root
from matchstream.ddl import split_statements
from matchstream.sqlrunner import ScriptSource, default_variables, run_sources

from .conftest import Env, wait_for

pytestmark = pytest.mark.integration

SQL = project_root() / "sql"
# The objects of the shipped sql/ files the publisher needs (the statements are taken from the
# files as they are, the topic name aside).
OBJECTS = {
    "00_schema.sql": ("training_metrics", "predictions", "alerts_published"),
    "10_pipelines.sql": ("alerts_published",),
    "20_views.sql": ("match_alerts", "alerts_to_publish"),
}
_HEAD = re.compile(r"CREATE (?:TABLE IF NOT EXISTS|VIEW|OR REPLACE PIPELINE) (\w+)")


def shipped_statements(topic: str) -> list[str]:
    out = []
    for name, objects in OBJECTS.items():
        for stmt in split_statements((SQL / name).read_text(), name):
            head = _HEAD.match(stmt.text)
            if head and head.group(1) in objects:
                out.append(stmt.text.replace("/alerts'", f"/{topic}'"))
    assert len(out) == sum(len(o) for o in OBJECTS.values())
    return out


def setup_alerts(env: Env, tmp_path: Path) -> AlertsOptions:
    script = f"USE `{env.database}`;\n" + ";\n".join(shipped_statements(env.topic)) + ";\n"
    run_sources([ScriptSource(script, "alerts-setup.sql", SQL)], config=env.config,
                variables=default_variables(env.config), emit=lambda _t: None)
    statement = tmp_path / "publish.sql"
    statement.write_text((SQL / "alerts" / "publish.sql").read_text()
                         .replace("/alerts'", f"/{env.topic}'"))
    env.db("INSERT INTO training_metrics (model_version, `rows`, positives, threshold, "
           "rows_seen_total, trained_at, train_seconds, skipped_rows) "
           "VALUES (1, 40, 8, 0.5, 40, NOW(6), 0.1, 0)")
    return AlertsOptions(database=env.database, topic=env.topic, statement=statement,
                         catch_up_timeout_s=60.0)


def score(env: Env, ids: range, probability: Any) -> None:
    env.db("INSERT INTO predictions (id, probability, predicted, model_version, scored_at) "
           "VALUES " + ", ".join(
               f"({i}, {probability(i)}, {int(probability(i) >= 0.5)}, 1, "
               f"'2026-12-02 07:00:00.{i:06d}')" for i in ids))


def whole_topic(env: Env, expected: int) -> list[Any]:
    consumer = KafkaConsumer(env.topic, bootstrap_servers=env.kafka,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=1500)
    messages: list[Any] = []
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            batch = list(consumer)
            messages.extend(batch)
            if len(messages) >= expected and not batch:
                break
    finally:
        consumer.close()
    return messages


def publisher_killed_after_producing(env: Env, options: AlertsOptions, tmp_path: Path) -> int:
    """One round in its own process, armed to die at ``alerts.after_publish``: the exit code."""
    child = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    child.update(env.config.to_env())
    child["MATCHSTREAM_FAULT"] = "alerts.after_publish"
    code = ("import sys\nfrom pathlib import Path\n"
            "from matchstream.config import Config\n"
            "from matchstream.alerts import AlertsOptions, run_publisher\n"
            "options = AlertsOptions(database=sys.argv[1], topic=sys.argv[2], "
            "statement=Path(sys.argv[3]))\n"
            "run_publisher(Config.from_env(), options, once=True)\n")
    with (tmp_path / "publisher.log").open("ab") as log:
        done = subprocess.run([sys.executable, "-c", code, options.database, options.topic,
                               str(options.statement)], env=child, stdout=log, stderr=log,
                              timeout=120, check=False)
    return done.returncode


def test_a_publisher_killed_after_producing_and_restarted_publishes_each_alert_once(
    env_factory: Any, engine: Any, tmp_path: Path
):
    env: Env = env_factory(partitions=2)
    options = setup_alerts(env, tmp_path)
    score(env, range(1, 41), lambda i: i / 40)  # ids 20..40 reach the threshold 0.5
    first = set(range(20, 41))

    # The record pipeline is stopped, so nothing the dead round produced is loaded back yet:
    # exactly the window in which publishing again would duplicate.
    assert publisher_killed_after_producing(env, options, tmp_path) == -9
    assert len(whole_topic(env, len(first))) == len(first)
    assert env.count("alerts_published") == 0
    assert env.count("alerts_to_publish") == len(first)  # what a blind second round would send
    with pytest.raises(AlertsError, match=r"is Stopped, 21 messages behind .* START PIPELINE"):
        publish_round(env.config, options)

    score(env, range(41, 51), lambda i: 0.9)  # new alerts while the publisher was down
    env.sql("START PIPELINE alerts_published")
    assert publish_round(env.config, options) == 10  # waited for the reload of the first 21

    messages = whole_topic(env, 31)
    ids = Counter(int(m.value.split(b"\t")[0]) for m in messages)
    assert set(ids) == first | set(range(41, 51))
    assert max(ids.values()) == 1, [i for i, n in ids.items() if n > 1]
    for message in messages:
        fields = message.value.rstrip(b"\n").split(b"\t")
        assert message.key == fields[0] and len(fields) == 5  # id, probability, ... scored_at
        assert message.value.endswith(b"\n")
    wait_for(lambda: env.count("alerts_published") == 31, what="alerts_published reloaded")
    assert env.count("alerts_to_publish") == 0
    assert publish_round(env.config, options) == 0
    assert env.db("SELECT probability, threshold, model_version, scored_at FROM "
                  "alerts_published WHERE id = 41") == env.db(
        "SELECT probability, threshold, model_version, scored_at FROM match_alerts WHERE id = 41")

    # A duplicate on the topic (another publisher, a hand-sent copy) is skipped by the primary
    # key: the record keeps one row per id and its pipeline keeps running.
    copied = int(messages[0].key)
    before = env.db("SELECT loaded_at FROM alerts_published WHERE id = %s", [copied])
    env.producer.send(env.topic, key=messages[0].key, value=messages[0].value)
    env.producer.flush()
    wait_for(lambda: sum(env.cursors("alerts_published").values()) == 32, what="the copy loaded")
    assert env.count("alerts_published") == 31 and env.state("alerts_published") == "Running"
    assert env.db("SELECT loaded_at FROM alerts_published WHERE id = %s", [copied]) == before
    assert [e for e in env.errors("alerts_published") if e["ERROR_TYPE"] == "Error"] == []


def test_one_publisher_at_a_time(env: Env):
    with publisher_lock(env.config), pytest.raises(AlertsError, match="another publisher"):
        with publisher_lock(env.config):
            pass


def test_the_publisher_refuses_what_it_cannot_publish_safely(env: Env, tmp_path: Path):
    statement = tmp_path / "publish.sql"
    statement.write_text((SQL / "alerts" / "publish.sql").read_text()
                         .replace("/alerts'", f"/{env.topic}'"))
    options = AlertsOptions(database=env.database, topic=env.topic, statement=statement)
    with pytest.raises(AlertsError, match="database 'no_such_db' does not exist"):
        publish_round(env.config, AlertsOptions(database="no_such_db", topic=env.topic,
                                                statement=statement))
    with pytest.raises(AlertsError, match=r"pipeline '.*\.alerts_published' does not exist"):
        publish_round(env.config, options)
    with pytest.raises(AlertsError, match=r"publishes to topic '.*', but pipeline "
                                          r"alerts_published records topic 'elsewhere'"):
        publish_round(env.config, AlertsOptions(database=env.database, topic="elsewhere",
                                                statement=statement))
    with pytest.raises(AlertsError, match="topic 'no-such-topic' does not exist"):
        statement.write_text("SELECT 1 AS id INTO KAFKA '${KAFKA}/no-such-topic'")
        publish_round(env.config, AlertsOptions(database=env.database, topic="no-such-topic",
                                                statement=statement))

"""The local stack for real: Tansu and MariaDB processes, started and stopped by `matchstream`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pymysql
import pytest
import singlestoredb
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from matchstream.config import Config
from matchstream.stack import Stack
from matchstream.stack.broker import PROJECT_TOPICS

from ..conftest import private_config

pytestmark = pytest.mark.integration


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "matchstream.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def env_for(config: Config, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATCHSTREAM_")}
    env.update(
        MATCHSTREAM_STATE_DIR=str(config.state_dir),
        MATCHSTREAM_KAFKA_PORT=str(config.kafka_port),
        MATCHSTREAM_DB_PORT=str(config.db_port),
        **extra,
    )
    return env


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_up_status_down_are_idempotent_and_leave_nothing_behind(tmp_path: Path) -> None:
    config = private_config(tmp_path / "state")
    env = env_for(config)

    first = run_cli("up", env=env)
    assert first.returncode == 0, first.stderr
    assert "started broker" in first.stdout and "started MariaDB" in first.stdout
    password = config.db_password()
    assert password not in first.stdout + first.stderr, "the password must never be printed"
    assert oct(config.db_password_file.stat().st_mode & 0o777) == "0o600"
    assert oct(config.db_client_file.stat().st_mode & 0o777) == "0o600"
    assert f"--defaults-extra-file={config.db_client_file}" in first.stdout
    client = subprocess.run(
        ["mysql", f"--defaults-extra-file={config.db_client_file}", "-N", "-e", "SELECT 6 * 7"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (client.returncode, client.stdout.strip()) == (0, "42"), client.stderr

    stack = Stack(config, with_engine=False)
    pids = {s.name: s.pid for s in stack.status()}
    assert all(pids.values()) and all(alive(p) for p in pids.values() if p)

    second = run_cli("up", env=env)
    assert second.returncode == 0, second.stderr
    assert "already running" in second.stdout
    assert {s.name: s.pid for s in stack.status()} == pids, (
        "a second `up` must not restart anything"
    )

    status = run_cli("status", env=env)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "memory only" in status.stdout
    assert status.stdout.count(" yes ") >= 2

    down = run_cli("down", env=env)
    assert down.returncode == 0, down.stderr
    assert "broker" in down.stdout and "mariadb" in down.stdout
    assert not any(alive(p) for p in pids.values() if p), "down must leave no process behind"

    again = run_cli("down", env=env)
    assert again.returncode == 0 and "nothing was running" in again.stdout
    after = run_cli("status", env=env)
    assert after.returncode == 3 and " yes " not in after.stdout


def test_up_after_a_broker_restart_recreates_the_project_topics(tmp_path: Path) -> None:
    config = private_config(tmp_path / "state")
    stack = Stack(config, with_engine=False)
    try:
        stack.up()
        assert set(PROJECT_TOPICS) <= set(stack.broker.list_topics())
        db_pid = stack.mariadb.process.running_pid()
        assert stack.broker.process.stop()
        done = stack.up()
        assert any("created topics" in line for line in done), done
        assert set(PROJECT_TOPICS) <= set(stack.broker.list_topics())
        assert stack.mariadb.process.running_pid() == db_pid, "MariaDB must not be restarted"
    finally:
        stack.down()


def test_a_taken_port_names_the_port_and_the_setting(tmp_path: Path) -> None:
    config = private_config(tmp_path / "state")
    with socket.socket() as squatter:
        squatter.bind((config.host, config.kafka_port))
        squatter.listen()
        result = run_cli("up", env=env_for(config))
    assert result.returncode == 2
    assert f"port {config.kafka_port}" in result.stderr
    assert "--kafka-port or MATCHSTREAM_KAFKA_PORT" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (config.run_dir / "broker.pid").exists(), "nothing may start after a failed check"


def test_a_missing_mariadbd_says_how_to_install_it(tmp_path: Path) -> None:
    config = private_config(tmp_path / "state")
    empty = tmp_path / "no-mariadb-here"
    empty.mkdir()
    result = run_cli("up", env=env_for(config, MATCHSTREAM_DB_BIN_DIR=str(empty)))
    assert result.returncode == 2
    assert "mariadbd was not found" in result.stderr
    assert "apt-get install mariadb-server" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (config.run_dir / "broker.pid").exists(), "nothing may start after a failed check"


def test_kafka_round_trip_with_kafka_python(stack: Config) -> None:
    topic = f"roundtrip-{uuid.uuid4().hex[:8]}"
    producer = KafkaProducer(bootstrap_servers=stack.kafka_bootstrap)
    sent = [f"row {i},{i * 2}".encode() for i in range(50)]
    for i, value in enumerate(sent):
        producer.send(topic, key=str(i).encode(), value=value)
    producer.flush()
    producer.close()

    consumer = KafkaConsumer(
        bootstrap_servers=stack.kafka_bootstrap, enable_auto_commit=False, consumer_timeout_ms=5000
    )
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    received = []
    for message in consumer:
        received.append(message.value)
        if len(received) == len(sent):
            break
    consumer.close()
    assert sorted(received) == sorted(sent)


def test_select_through_pymysql_and_singlestoredb(stack: Config) -> None:
    password = stack.db_password()
    with pymysql.connect(
        host=stack.host, port=stack.db_port, user="root", password=password
    ) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 + %s", (41,))
            assert cur.fetchone() == (42,)
    conn2 = singlestoredb.connect(
        host=stack.host, port=stack.db_port, user="root", password=password
    )
    try:
        cur2 = conn2.cursor()
        cur2.execute("SELECT 'matchstream', 6 * 7")
        assert [tuple(row) for row in cur2.fetchall()] == [("matchstream", 42)]
    finally:
        conn2.close()


def test_mariadb_rejects_a_wrong_password_and_listens_on_loopback_only(stack: Config) -> None:
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(host=stack.host, port=stack.db_port, user="root", password="wrong")
    with pymysql.connect(
        host=stack.host, port=stack.db_port, user="root", password=stack.db_password()
    ) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT @@bind_address, @@local_infile")
            assert cur.fetchone() == ("127.0.0.1", 1)


def test_a_lost_password_file_is_reported_at_once_and_stops_the_server(tmp_path: Path) -> None:
    config = private_config(tmp_path / "state")
    stack = Stack(config, with_engine=False)
    stack.up()
    stack.down()
    config.db_password_file.write_text("not-the-password\n")
    result = run_cli("up", env=env_for(config))
    try:
        assert result.returncode == 2
        assert "rejects the root password" in result.stderr
        assert "Traceback" not in result.stderr
        assert stack.mariadb.process.running_pid() is None, "the refused server is stopped"
    finally:
        stack.down()

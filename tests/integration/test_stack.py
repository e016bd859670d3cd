"""The local stack for real: Tansu and MariaDB processes, started and stopped by `matchstream`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pymysql
import pytest
import singlestoredb
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from matchstream.config import Config
from matchstream.stack import Stack
from matchstream.stack.broker import PROJECT_TOPICS
from matchstream.stack.mariadb import SECURED_MARKER, MariaDB
from matchstream.stack.ports import port_answers

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
    try:
        _up_status_down(config, env)
    finally:
        Stack(config).down()  # `up` started the engine too: a failed assertion must not leak it


def _up_status_down(config: Config, env: dict[str, str]) -> None:
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


# The accounts a fresh data directory has: root and the locked system account. (An anonymous
# login cannot be tried: pymysql turns an empty user name into the OS user's; _assert_password_only
# checks the account list instead.)
PROBED_USERS = ("root", "mariadb.sys")
ACCESS_DENIED = 1045
ACCOUNT_LOCKED = 4151  # mariadb.sys@localhost exists, locked


def _try_empty_password(config: Config, user: str, *, tcp: bool) -> bool | None:
    """True: logged in without a password; False: the server said no; None: nothing answered."""
    where: dict[str, Any] = (
        {"host": config.host, "port": config.db_port}
        if tcp
        else {"unix_socket": str(config.db_socket)}
    )
    try:
        # No TLS (the server has none): building pymysql's TLS context takes ~40 ms a try.
        pymysql.connect(
            user=user, password="", connect_timeout=1, ssl_disabled=True, **where
        ).close()
    except pymysql.err.OperationalError as exc:
        return False if exc.args[0] in (ACCESS_DENIED, ACCOUNT_LOCKED) else None
    return True


class EmptyPasswordProbe:
    """A thread that keeps trying to log in without a password while `up` runs: root over TCP
    every couple of milliseconds, the other accounts and the socket in between."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.got_in: list[str] = []
        self.tcp_refused = 0  # root over TCP reached the server and was told no
        self.attempts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        others = [(u, tcp) for u in PROBED_USERS for tcp in (True, False)]
        turn = 0
        while not self._stop.is_set():
            user, tcp = others[turn % len(others)]
            turn += 1
            for attempt_user, attempt_tcp in (("root", True), (user, tcp)):
                if not attempt_tcp and not self.config.db_socket.exists():
                    continue
                result = _try_empty_password(self.config, attempt_user, tcp=attempt_tcp)
                self.attempts += 1
                if result:
                    self.got_in.append(
                        f"{attempt_user!r} over {'TCP' if attempt_tcp else 'socket'}"
                    )
                elif result is False and attempt_user == "root" and attempt_tcp:
                    self.tcp_refused += 1
            self._stop.wait(0.002)

    def __enter__(self) -> EmptyPasswordProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def keep_on_until_refused(self, times: int, timeout_s: float = 20.0) -> None:
        """Wait until root over TCP was refused ``times`` times: the probe did reach the server."""
        deadline = time.monotonic() + timeout_s
        while self.tcp_refused < times and time.monotonic() < deadline:
            time.sleep(0.05)


def _assert_password_only(config: Config) -> None:
    for user in PROBED_USERS:
        for tcp in (True, False):
            assert _try_empty_password(config, user, tcp=tcp) is False, (user, tcp)
    with pymysql.connect(
        host=config.host, port=config.db_port, user="root", password=config.db_password()
    ) as conn:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT CONCAT(QUOTE(`User`), '@', QUOTE(`Host`)) FROM mysql.global_priv WHERE"
                " (IFNULL(JSON_VALUE(`Priv`, '$.authentication_string'), '') = ''"
                " AND IFNULL(JSON_EXTRACT(`Priv`, '$.account_locked'), 'false') <> 'true')"
                " OR `User` = ''"
            )
            assert cur.fetchall() == (), "accounts without a password"


def test_a_first_up_never_lets_anyone_in_without_the_password(tmp_path: Path) -> None:
    config = private_config(tmp_path / "state")
    stack = Stack(config, with_engine=False)
    try:
        with EmptyPasswordProbe(config) as probe:
            stack.up()
            probe.keep_on_until_refused(20)
        assert probe.got_in == [], (
            f"{len(probe.got_in)} logins without password: {probe.got_in[:3]}"
        )
        assert probe.tcp_refused >= 20, "the probe never reached the server"
        assert (config.db_dir / SECURED_MARKER).is_file()
        assert oct(config.run_dir.stat().st_mode & 0o777) == "0o700"
        assert oct(config.state_dir.stat().st_mode & 0o777) == "0o700"
        _assert_password_only(config)
    finally:
        stack.down()


class Interrupted(BaseException):
    """What a Ctrl-C or a kill does to `up`: it stops where it is, with no clean-up."""


def test_an_interrupted_first_up_leaves_no_way_in_and_the_next_up_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = private_config(tmp_path / "state")
    stack = Stack(config, with_engine=False)
    leftover = config.db_dir.with_name(config.db_dir.name + ".new")
    leftover.mkdir(parents=True)  # what an `up` interrupted inside mariadb-install-db leaves
    (leftover / "ibdata1").write_bytes(b"half made")
    real_start = MariaDB.start

    def start_then_interrupt(self: MariaDB) -> None:
        real_start(self)  # the server process is launched, then `up` is cut off
        raise Interrupted

    monkeypatch.setattr(MariaDB, "start", start_then_interrupt)
    try:
        with pytest.raises(Interrupted):
            stack.up()
        monkeypatch.undo()
        assert stack.mariadb.process.running_pid() is not None, "the server outlives the `up`"
        deadline = time.monotonic() + 30
        while not port_answers(config.host, config.db_port) and time.monotonic() < deadline:
            time.sleep(0.02)
        for user in PROBED_USERS:
            assert _try_empty_password(config, user, tcp=True) is False, user
        assert not leftover.exists(), "a half-made data directory is made again, not kept"

        result = run_cli("up", env=env_for(config))
        assert result.returncode == 0, result.stderr
        _assert_password_only(config)
    finally:
        monkeypatch.undo()
        Stack(config).down()  # the CLI's `up` above started the engine as well


def _passwordless_data_dir(stack: Stack) -> None:
    """A data directory as an older matchstream's first `up` left it when interrupted."""
    config = stack.config
    config.db_dir.mkdir(parents=True)
    init = subprocess.run(
        [
            stack.mariadb.install_binary(),
            "--no-defaults",
            f"--datadir={config.db_dir}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            *(["--user=root"] if os.geteuid() == 0 else []),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert init.returncode == 0, init.stderr


def test_a_data_directory_left_without_root_password_is_secured_before_it_listens(
    tmp_path: Path,
) -> None:
    """An older matchstream set root's password only once the server listened: a first `up`
    of it interrupted in that window left root without one. The next `up` must close it
    before any connection can be made."""
    config = private_config(tmp_path / "state")
    stack = Stack(config, with_engine=False)
    _passwordless_data_dir(stack)
    try:
        with EmptyPasswordProbe(config) as probe:
            done = stack.up()
            probe.keep_on_until_refused(20)
        assert probe.got_in == [], (
            f"{len(probe.got_in)} logins without password: {probe.got_in[:3]}"
        )
        assert probe.tcp_refused >= 20, "the probe never reached the server"
        assert not any("initialised" in line for line in done), "the data must be kept"
        assert (config.db_dir / SECURED_MARKER).is_file()
        _assert_password_only(config)
    finally:
        stack.down()


def test_a_server_an_older_matchstream_left_without_root_password_is_stopped_and_secured(
    tmp_path: Path,
) -> None:
    config = private_config(tmp_path / "state")
    stack = Stack(config, with_engine=False)
    _passwordless_data_dir(stack)
    stack.mariadb.process.start(stack.mariadb.argv())  # as the older `up` did, interrupted
    try:
        deadline = time.monotonic() + 30
        while _try_empty_password(config, "root", tcp=True) is None:
            assert time.monotonic() < deadline, "the old-style server never answered"
            time.sleep(0.05)
        assert _try_empty_password(config, "root", tcp=True) is True, "the situation to repair"
        old_pid = stack.mariadb.process.running_pid()
        done = stack.up()
        assert any("stopped MariaDB" in line for line in done), done
        assert stack.mariadb.process.running_pid() not in (None, old_pid)
        assert (config.db_dir / SECURED_MARKER).is_file()
        _assert_password_only(config)
    finally:
        stack.down()

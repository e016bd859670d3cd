"""The Kafka clients users bring, against the session's real broker: kafka-python, confluent-kafka,
kcat and kafkajs (Node.js). What each client produced, and what `matchstream produce` wrote, is
read back by every client: keys, values and order. kcat on a librdkafka older than 2.2 fails on
its own; that failure and the workaround `matchstream status` prints are asserted here too."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import pytest

from matchstream.config import Config
from matchstream.kafka_clients import (
    KAFKAJS_TESTED,
    KCAT_FAILURE,
    kcat_info,
    kcat_setup,
    reads_tansu,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
NODE_DIR = REPO / "tests" / "clients" / "node"
TRAIN_LINES = (REPO / "data" / "train.csv").read_text().splitlines()

Message = tuple[str | None, str]

# Keys and values a CLI user would type: plain, non-ASCII, CSV-like, and one without a key.
MESSAGES: list[Message] = [
    ("k1", "plain"),
    ("k2", "h\u00e9llo w\u00f6rld \u2713"),
    ("k3", "1,0.25,\"quoted\",x y"),
    (None, "no key"),
]
TIMEOUT_S = 60


class Client(Protocol):
    name: str

    def produce(self, topic: str, messages: list[Message]) -> None: ...

    def consume(self, topic: str, count: int) -> list[Message]: ...


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode()


class KafkaPython:
    name = "kafka-python"

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap

    def produce(self, topic: str, messages: list[Message]) -> None:
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
        try:
            futures = [producer.send(topic, key=None if k is None else k.encode(),
                                     value=v.encode()) for k, v in messages]
            producer.flush(TIMEOUT_S)
            for future in futures:
                future.get(timeout=TIMEOUT_S)
        finally:
            producer.close()

    def consume(self, topic: str, count: int) -> list[Message]:
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                 consumer_timeout_ms=1000)
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        out: list[Message] = []
        deadline = time.monotonic() + TIMEOUT_S
        try:
            while time.monotonic() < deadline:
                batch = list(consumer)
                out.extend((_text(m.key), m.value.decode()) for m in batch)
                if len(out) >= count and not batch:  # one idle round more: extras show up
                    break
        finally:
            consumer.close()
        return out


class ConfluentKafka:
    name = "confluent-kafka"

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap

    def produce(self, topic: str, messages: list[Message]) -> None:
        from confluent_kafka import Producer

        errors: list[str] = []

        def delivered(err: object, _msg: object) -> None:
            if err is not None:
                errors.append(str(err))

        producer = Producer({"bootstrap.servers": self.bootstrap, "acks": "all"})
        for key, value in messages:
            producer.produce(topic, key=key, value=value, on_delivery=delivered)
        assert producer.flush(TIMEOUT_S) == 0, "messages left undelivered"
        assert not errors, errors

    def consume(self, topic: str, count: int) -> list[Message]:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        consumer = Consumer({"bootstrap.servers": self.bootstrap, "enable.auto.commit": False,
                             "group.id": f"clients-{uuid.uuid4().hex[:8]}"})
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        out: list[Message] = []
        deadline = time.monotonic() + TIMEOUT_S
        idle_after_count = 0
        try:
            while time.monotonic() < deadline and idle_after_count < 2:
                msg = consumer.poll(0.5)
                if msg is None:
                    idle_after_count += len(out) >= count
                    continue
                assert msg.error() is None, msg.error()
                out.append((_text(msg.key()), (msg.value() or b"").decode()))
        finally:
            consumer.close()
        return out


class Kcat:
    name = "kcat"

    def __init__(self, bootstrap: str, environment: dict[str, str]) -> None:
        self.bootstrap = bootstrap
        self.env = {**os.environ, **environment}

    def run(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(["kcat", "-b", self.bootstrap, *args], input=stdin, env=self.env,
                              capture_output=True, text=True, timeout=TIMEOUT_S, check=False)

    def produce(self, topic: str, messages: list[Message]) -> None:
        # -K: key TAB value; a line without the delimiter is sent without a key.
        lines = "".join(v + "\n" if k is None else f"{k}\t{v}\n" for k, v in messages)
        done = self.run("-P", "-t", topic, "-K", "\t", stdin=lines)
        assert done.returncode == 0 and not done.stderr, done.stderr

    def consume(self, topic: str, count: int) -> list[Message]:
        # -e: stop at the end of the partition, so a duplicate would be read too.
        done = self.run("-C", "-t", topic, "-o", "beginning", "-e", "-J", "-q")
        assert done.returncode == 0, done.stderr
        rows = [json.loads(line) for line in done.stdout.splitlines() if line]
        return [(r["key"], r["payload"]) for r in rows]


class KafkaJs:
    name = "kafkajs"

    def __init__(self, bootstrap: str, node_modules: Path) -> None:
        self.bootstrap = bootstrap
        self.env = {**os.environ, "NODE_PATH": str(node_modules)}

    def run(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(["node", str(NODE_DIR / "client.js"), *args], input=stdin,
                              env=self.env, capture_output=True, text=True,
                              timeout=TIMEOUT_S + 30, check=False)

    def produce(self, topic: str, messages: list[Message]) -> None:
        lines = "".join(json.dumps({"key": k, "value": v}) + "\n" for k, v in messages)
        done = self.run("produce", self.bootstrap, topic, stdin=lines)
        assert done.returncode == 0, done.stderr

    def consume(self, topic: str, count: int) -> list[Message]:
        done = self.run("consume", self.bootstrap, topic, str(count))
        assert done.returncode == 0, done.stderr
        rows = [json.loads(line) for line in done.stdout.splitlines() if line]
        assert [r["offset"] for r in rows] == list(range(len(rows)))
        return [(r["key"], r["value"]) for r in rows]


def _need(binary: str) -> str:
    path = shutil.which(binary)
    assert path, f"{binary} not installed: scripts/bootstrap.sh's bootstrap_test_tools installs it"
    return path


def install_node_modules() -> Path:
    """kafkajs as tests/clients/node's lock file pins it, installed once into a cache directory
    outside the repository (keyed by the lock file) with `npm ci`; later runs need no network."""
    _need("node")
    _need("npm")
    lock = (NODE_DIR / "package.json").read_bytes() + (NODE_DIR / "package-lock.json").read_bytes()
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "matchstream"
    target = root / "node-clients" / hashlib.sha256(lock).hexdigest()[:16]
    marker = target / "node_modules" / "kafkajs" / "package.json"
    if not marker.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".staging-"))
        for name in ("package.json", "package-lock.json"):
            shutil.copy2(NODE_DIR / name, staging / name)
        done = subprocess.run(
            ["npm", "ci", "--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts"],
            cwd=staging, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, f"npm ci in {staging}: {done.stderr[-2000:]}"
        try:
            staging.rename(target)  # a parallel run may have won: its copy is as good
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    assert json.loads(marker.read_text())["version"] == KAFKAJS_TESTED
    return target / "node_modules"


def new_topic(stack: Config, label: str) -> str:
    """A fresh one-partition topic, so the order of messages is the order of sending."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    name = f"clients-{label}-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
    finally:
        admin.close()
    return name


def cli_environment(stack: Config) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATCHSTREAM_")}
    env.update(MATCHSTREAM_STATE_DIR=str(stack.state_dir),
               MATCHSTREAM_KAFKA_PORT=str(stack.kafka_port),
               MATCHSTREAM_DB_PORT=str(stack.db_port))
    return env


def matchstream(stack: Config, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "matchstream.cli", *args],
                          env=cli_environment(stack), capture_output=True, text=True,
                          timeout=120, check=False)


CLIENTS = ("kafka-python", "confluent-kafka", "kcat", "kafkajs")
SOURCES = (*CLIENTS, "matchstream produce")


@pytest.fixture(scope="module")
def clients(stack: Config) -> Callable[[str], Client]:
    """Each client by name, built when first asked for (kafkajs installs its package then)."""
    built: dict[str, Client] = {}

    def get(name: str) -> Client:
        if name not in built:
            if name == "kafka-python":
                built[name] = KafkaPython(stack.kafka_bootstrap)
            elif name == "confluent-kafka":
                built[name] = ConfluentKafka(stack.kafka_bootstrap)
            elif name == "kcat":
                _need("kcat")
                setup = kcat_setup(stack.state_dir)
                assert setup.environment is not None, (
                    f"no way to run kcat here: {setup.info} needs librdkafka >= 2.2.0 and "
                    "confluent-kafka's wheel brings none")
                built[name] = Kcat(stack.kafka_bootstrap, setup.environment)
            else:
                built[name] = KafkaJs(stack.kafka_bootstrap, install_node_modules())
        return built[name]

    return get


@pytest.fixture(scope="module")
def produced(
    stack: Config, clients: Callable[[str], Client], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], tuple[str, list[Message]]]:
    """``source -> (topic, messages it wrote)``, each source producing once, when first asked."""
    done: dict[str, tuple[str, list[Message]]] = {}

    def get(source: str) -> tuple[str, list[Message]]:
        if source not in done:
            topic = new_topic(stack, source.replace(" ", "-"))
            if source == "matchstream produce":
                rows = TRAIN_LINES[1:6]
                csv = tmp_path_factory.mktemp("clients") / "train.csv"
                csv.write_text("\n".join([TRAIN_LINES[0], *rows]) + "\n")
                result = matchstream(stack, "produce", "-q", topic, str(csv), "--role",
                                     "training")
                assert result.returncode == 0, result.stderr
                messages: list[Message] = [(r.split(",")[0], r) for r in rows]
            else:
                messages = list(MESSAGES)
                clients(source).produce(topic, messages)
            done[source] = (topic, messages)
        return done[source]

    return get


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("consumer", CLIENTS)
def test_every_client_reads_what_each_source_wrote(
    consumer: str,
    source: str,
    clients: Callable[[str], Client],
    produced: Callable[[str], tuple[str, list[Message]]],
) -> None:
    topic, messages = produced(source)
    assert clients(consumer).consume(topic, len(messages)) == messages


def run_line(line: str) -> subprocess.CompletedProcess[str]:
    """A ``NAME=value ... kcat ...`` line as a shell would run it (without a shell)."""
    words = shlex.split(line)
    assignments = words[: next(i for i, w in enumerate(words) if "=" not in w)]
    env = {**os.environ, **dict(a.split("=", 1) for a in assignments)}
    return subprocess.run(words[len(assignments):], env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S, check=False)


@pytest.fixture(scope="module")
def status_out(stack: Config) -> str:
    """What `matchstream status` prints (exit 3 here: the session stack runs no engine)."""
    return matchstream(stack, "status").stdout


def test_kcat_alone_and_the_line_status_prints(stack: Config, status_out: str) -> None:
    """Debian 12's kcat (librdkafka 2.0.2) fails with the exact message below; the command line
    `matchstream status` prints runs the same binary on the venv's librdkafka and works."""
    _need("kcat")
    info = kcat_info()
    assert info is not None, "kcat -V printed no version"
    alone = subprocess.run(["kcat", "-b", stack.kafka_bootstrap, "-L", "-m", "2"],
                           capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    status = status_out
    lines = [line.removeprefix("kcat:  ") for line in status.splitlines()
             if line.startswith("kcat:  ")]
    assert len(lines) == 1, status
    line = lines[0]
    assert line.endswith(f"kcat -b {stack.kafka_bootstrap} -L"), line
    row = next(r for r in status.splitlines() if r.startswith("kcat "))
    if reads_tansu(info.librdkafka):
        assert alone.returncode == 0, alone.stderr
        assert line.startswith("kcat "), line
        assert row.rstrip().endswith(" yes"), row
    else:
        assert alone.returncode != 0
        assert KCAT_FAILURE in alone.stderr, alone.stderr
        assert line.startswith("LD_LIBRARY_PATH="), line
        assert f"librdkafka {info.librdkafka}" in row and "line below" in row, row
        assert f'alone: "{KCAT_FAILURE}" (librdkafka < 2.2.0)' in status
        # The same binary, on a library that reads the broker's answer.
        assignment = shlex.split(line)[0]
        fixed = kcat_info(env={**os.environ, **dict([assignment.split("=", 1)])})
        assert fixed is not None and fixed.path == info.path
        assert reads_tansu(fixed.librdkafka), fixed
    listed = run_line(line)
    assert listed.returncode == 0, listed.stderr
    for topic in ("training", "scoring", "outcomes"):
        assert f'topic "{topic}"' in listed.stdout, listed.stdout


def test_kcat_settings_are_no_way_out(stack: Config) -> None:
    """What the README says about librdkafka's own settings: with `api.version.request=false`
    a fallback of 0.10 or later asks for the versions anyway (and fails the same way), and with
    0.9.0 the broker cannot decode the produce request and librdkafka cannot read ListOffsets v0.
    True on librdkafka 2.0.2 and 2.16.0 alike."""
    _need("kcat")
    info = kcat_info()
    assert info is not None
    old = Kcat(stack.kafka_bootstrap, {})  # kcat on its own librdkafka
    if not reads_tansu(info.librdkafka):
        for fallback in ("2.1.0", "3.0.0"):
            done = old.run(
                "-X", "api.version.request=false", "-X", f"broker.version.fallback={fallback}",
                "-L", "-m", "2")
            assert done.returncode != 0 and KCAT_FAILURE in done.stderr, (fallback, done.stderr)
    topic, messages = new_topic(stack, "fallback"), [("k", "v")]
    KafkaPython(stack.kafka_bootstrap).produce(topic, messages)
    settings = ("-X", "api.version.request=false", "-X", "broker.version.fallback=0.9.0")
    sent = old.run(*settings, "-P", "-t", topic, stdin="lost\n")
    assert sent.returncode != 0 and "Disconnected" in sent.stderr, sent.stderr
    read = old.run(*settings, "-C", "-t", topic, "-o", "beginning", "-e")
    assert read.returncode != 0, read.stdout
    assert "ListOffsets v0" in read.stderr and "Read underflow" in read.stderr, read.stderr
    assert KafkaPython(stack.kafka_bootstrap).consume(topic, 1) == messages  # nothing came in


def test_status_lists_the_python_clients_at_their_installed_versions(status_out: str) -> None:
    import importlib.metadata

    import confluent_kafka

    out = status_out
    rows = {line.split()[0]: line for line in out.splitlines() if line[:1].isalpha()}
    assert rows["kafka-python"].split()[1:] == [importlib.metadata.version("kafka-python"), "yes"]
    assert rows["confluent-kafka"].split()[1:] == [
        importlib.metadata.version("confluent-kafka"),
        "(librdkafka", f"{confluent_kafka.libversion()[0]})", "yes"]
    assert f"kafkajs (Node.js)  {KAFKAJS_TESTED} (tested)" in out


def test_kafkajs_version_in_status_is_the_pinned_one() -> None:
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    assert json.loads((NODE_DIR / "package.json").read_text())["dependencies"] == {
        "kafkajs": KAFKAJS_TESTED}
    assert lock["packages"]["node_modules/kafkajs"]["version"] == KAFKAJS_TESTED

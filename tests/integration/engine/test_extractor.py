"""The extractor against the real broker: Tansu's ListOffsets quirk, exact ranges, clear errors
(docs/engine.md, "Broker notes")."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from confluent_kafka import Consumer, TopicPartition
from kafka import KafkaProducer

from matchstream.engine import extractor as extractor_module
from matchstream.engine.extractor import Extractor, KafkaUnreachable, OffsetOutOfRange

from .conftest import Env

pytestmark = pytest.mark.integration

N = 500


def _produce_batched(env: Env, partition: int = 0) -> None:
    """N messages in a few multi-record batches (long linger, big batches)."""
    producer = KafkaProducer(bootstrap_servers=env.kafka, linger_ms=200, batch_size=1024 * 1024)
    try:
        for i in range(N):
            producer.send(env.topic, f"{i}\tv{i}".encode(), partition=partition)
        producer.flush()
    finally:
        producer.close()


def _listed_end(env: Env, partition: int) -> int:
    """What ListOffsets(LATEST) says, i.e. what a naive client takes as the end."""
    consumer = Consumer({"bootstrap.servers": env.kafka, "group.id": "listed-end-probe"})
    try:
        _low, high = consumer.get_watermark_offsets(
            TopicPartition(env.topic, partition), timeout=10, cached=False)
        return int(high)
    finally:
        consumer.close()


def test_batched_topic_is_read_to_its_real_end(env_factory) -> None:
    env = env_factory(partitions=2)
    _produce_batched(env)
    assert _listed_end(env, 0) < N, (
        "precondition: Tansu's ListOffsets(LATEST) answers inside a batched partition; if it "
        "now answers the real end, update docs/engine.md 'Broker notes'")
    extractor = Extractor([env.kafka], env.topic, client_id="test-extractor")
    try:
        assert extractor.partitions() == [0, 1]
        marks = extractor.watermarks([0, 1])
        assert (marks[0].low, marks[0].high) == (0, N)
        assert (marks[1].low, marks[1].high) == (0, 0)  # empty partition
        data = extractor.read(0, 0, 10 * N, end_hint=marks[0].high)
        assert [m.offset for m in data.messages] == list(range(N))
        assert data.messages[-1].value == f"{N - 1}\tv{N - 1}".encode()
        assert (data.start, data.end) == (0, N)
        # Without a hint the read follows the fetches' high watermark, not ListOffsets.
        tail = extractor.read(0, N - 7, 10 * N)
        assert [m.offset for m in tail.messages] == list(range(N - 7, N)) and tail.end == N
    finally:
        extractor.close()


def test_pipeline_loads_the_tail_of_a_batched_topic(env: Env) -> None:
    env.db("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))")
    _produce_batched(env)
    env.sql(f"CREATE PIPELINE p AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' INTO TABLE t")
    result = env.sql("START PIPELINE p FOREGROUND")
    assert getattr(result, "rowcount", None) == N
    assert env.count("t") == N and env.cursors("p") == {0: N}


def test_read_returns_exactly_the_requested_range(env: Env) -> None:
    _produce_batched(env)
    extractor = Extractor([env.kafka], env.topic, client_id="test-extractor")
    try:
        data = extractor.read(0, 100, 50, end_hint=N)
        assert [m.offset for m in data.messages] == list(range(100, 150))
        assert (data.start, data.end) == (100, 150)
        # The hint ends the range even when the limit would allow more.
        data = extractor.read(0, 200, 1000, end_hint=203)
        assert [m.offset for m in data.messages] == [200, 201, 202] and data.end == 203
        # An empty range reads nothing.
        assert extractor.read(0, 300, 10, end_hint=300).messages == []
    finally:
        extractor.close()


def test_read_beyond_the_end_names_the_offset(env: Env) -> None:
    env.produce([b"1\ta", b"2\tb"])
    extractor = Extractor([env.kafka], env.topic, client_id="test-extractor")
    started = time.monotonic()
    try:
        with pytest.raises(OffsetOutOfRange, match=rf"{env.topic}\[0\]@500 is beyond the end"):
            extractor.read(0, 500, 10, end_hint=510)
    finally:
        extractor.close()
    assert time.monotonic() - started < 10  # not the 30 s stall timeout


def test_unreachable_broker_is_a_clear_error(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extractor_module, "REQUEST_TIMEOUT_S", 1.0)
    extractor = Extractor(["127.0.0.1:1"], env.topic, client_id="test-extractor")
    try:
        with pytest.raises(KafkaUnreachable, match=r"127\.0\.0\.1:1") as caught:
            extractor.partitions()
        assert isinstance(caught.value, ConnectionError)
        with pytest.raises(KafkaUnreachable, match=rf"{env.topic}\[0\]"):
            extractor.watermarks([0])
    finally:
        extractor.close()


def test_librdkafka_writes_nothing_to_stderr() -> None:
    """librdkafka logs refused connections at error level; none of it may reach a command's
    stderr (the engine's logger gets it at DEBUG)."""
    code = (
        "from matchstream.engine import extractor as x\n"
        "x.REQUEST_TIMEOUT_S = 2.0\n"
        "e = x.Extractor(['127.0.0.1:1'], 'nowhere', client_id='quiet')\n"
        "try:\n"
        "    e.partitions()\n"
        "except x.KafkaUnreachable as exc:\n"
        "    print('unreachable:', exc)\n"
        "e.close()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert "unreachable: cannot read the metadata of topic 'nowhere'" in done.stdout
    assert done.stderr == ""


def test_a_message_larger_than_the_engine_takes_is_named_at_once(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fetch answer above receive.message.max.bytes (here 2 MiB, a 3 MiB message; the engine's
    own limit is 65 MiB) never arrives, and librdkafka only says the broker is down: the read
    fails at once with MessageTooLarge, naming the offset, not after a stall as an outage."""
    from matchstream.engine.extractor import MessageTooLarge

    monkeypatch.setattr(extractor_module, "MAX_PARTITION_FETCH_BYTES", 1024 * 1024)
    monkeypatch.setattr(extractor_module, "FETCH_MAX_BYTES", 1024 * 1024)
    monkeypatch.setattr(extractor_module, "RECEIVE_MESSAGE_MAX_BYTES", 2 * 1024 * 1024)
    env.produce([b"0\tsmall", b"x" * (3 * 1024 * 1024)])
    extractor = Extractor([env.kafka], env.topic, client_id="too-large")
    try:
        started = time.monotonic()
        with pytest.raises(MessageTooLarge, match=rf"{env.topic}\[0\]@0: .*too large"):
            extractor.read(0, 0, 10, end_hint=2)
        assert time.monotonic() - started < extractor_module.STALL_TIMEOUT_S / 2
    finally:
        extractor.close()


def test_a_broker_slower_than_the_fetch_wait_gets_a_longer_one(
    env: Env, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Tansu answers a fetch with what it gathered within fetch.wait.max.ms, and gathering
    takes longer the more record batches a partition holds (a 30-minute soak's topic of 29,000
    one-message batches was never read again with 10 ms). Here the wait starts at 0 ms, which
    gives nothing: the read rebuilds its consumer with longer waits and gets every message."""
    import logging

    caplog.set_level(logging.INFO, logger=extractor_module.__name__)
    monkeypatch.setattr(extractor_module, "FETCH_MAX_WAIT_MS", 0)
    monkeypatch.setattr(extractor_module, "SLOW_FETCH_S", 0.3)
    producer = KafkaProducer(bootstrap_servers=env.kafka, linger_ms=0)
    for i in range(200):  # one record batch per message, as a synchronous producer sends them
        producer.send(env.topic, f"{i}\tv{i}".encode(), partition=0).get(timeout=30)
    producer.close()
    extractor = Extractor([env.kafka], env.topic, client_id="slow-broker")
    try:
        data = extractor.read(0, 0, 200, end_hint=200)
    finally:
        extractor.close()
    assert [m.offset for m in data.messages] == list(range(200))
    if "waiting up to" not in caplog.text:
        pytest.fail("the 0 ms wait was never lengthened: did Tansu answer a 0 ms fetch with "
                    "data? then this test no longer shows the case it is about")

"""Reading Kafka partitions by offset range: the engine's extract step (confluent-kafka).

The extractor never joins a consumer group and never commits offsets to Kafka: the pipeline's
cursors live in the database, next to the rows they account for (docs/engine.md, "Exactly once").
librdkafka insists on a ``group.id``; it is set but unused: partitions are only ever ``assign``-ed
(no JoinGroup), and auto-commit and the offset store are off.

The end of a partition is taken from fetch responses (their high watermark), not from
ListOffsets: Tansu 0.6 answers ListOffsets(LATEST) with the base offset of the last record batch
plus one, which lies *inside* the partition whenever producers batch, so a pipeline trusting it
would leave the tail of a topic unread until more data arrives (tests/integration/engine). Hence
``get_watermark_offsets(cached=False)`` (ListOffsets) is used only for the low watermark and as a
starting point; the high watermark comes from ``cached=True`` after a fetch has delivered a message.

The client was chosen by measurement (issue 3, docs/benchmarks.md): confluent-kafka reads
about 3x faster than kafka-python against the same broker.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from matchstream.ddl.ast import CreatePipeline
from matchstream.engine.errors import CODE_EXTRACT, EngineError, UnsupportedOption

__all__ = [
    "CONFIG_KEYS",
    "CREDENTIAL_KEYS",
    "Extractor",
    "KafkaReadError",
    "KafkaStalled",
    "KafkaUnreachable",
    "Message",
    "OffsetOutOfRange",
    "PartitionData",
    "Watermarks",
    "client_options",
    "pipeline_extractor",
]

log = logging.getLogger(__name__)

# How long one consume call waits for the broker. The engine reacts to STOP between calls, so this
# bounds how late a STOP is seen during extraction; longer waits cost nothing on a busy topic.
POLL_TIMEOUT_S = 0.2
# The broker holds an empty fetch this long before answering. Partitions are assigned only while a
# read or probe runs, so short long-polls cost nothing when idle; but a fetch still held at the
# broker delays the next assignment's first fetch by up to this much (100 ms measured it: every
# read and probe got 0.1 s slower), and Kafka's default (500 ms) would be worse.
FETCH_MAX_WAIT_MS = 10
# But Tansu answers a fetch only with what it gathered within that wait, and gathering takes
# longer the more record batches a partition holds (~30-100 ms at 29,000 one-message batches,
# measured): with 10 ms such a partition is never read at all. So a read that makes no progress
# for SLOW_FETCH_S while the partition has data there rebuilds the consumer with a four times
# longer wait, up to MAX_FETCH_WAIT_MS; the extractor keeps the longer wait from then on.
SLOW_FETCH_S = 1.0
MAX_FETCH_WAIT_MS = 1000
# Per-partition fetch size: above the largest message a CSV row plausibly needs (10 MB), so one
# fetch holds a whole message even from a broker that does not follow KIP-74.
MAX_PARTITION_FETCH_BYTES = 16 * 1024 * 1024
# Whole fetch response; librdkafka needs receive.message.max.bytes >= fetch.max.bytes + 512.
FETCH_MAX_BYTES = 64 * 1024 * 1024
# The largest answer the consumer takes. Tansu accepts messages of 100 MB and more and answers a
# fetch with whole batches whatever fetch.max.bytes says, so a message of 100 MB comes back as a
# response of that size: below this, it is read (and a transform can reject it as a bad row);
# above, the read fails with MessageTooLarge. Memory of a read grows with it only when such a
# message is there.
RECEIVE_MESSAGE_MAX_BYTES = 512 * 1024 * 1024
# librdkafka prefetches into a local queue; this caps it (per partition; one partition is
# assigned at a time), so the memory of a read is this plus the messages handed to the caller.
QUEUED_MAX_MESSAGES_KBYTES = 64 * 1024
# Messages handed over per consume call (the per-call overhead dominates below a few thousand).
CONSUME_BATCH = 10_000
# Metadata and ListOffsets requests give up after this long (broker unreachable).
REQUEST_TIMEOUT_S = 10.0
# A read that makes no progress for this long while the high watermark says data is there fails
# the batch partition instead of hanging the pipeline.
STALL_TIMEOUT_S = 30.0
# A read starting beyond the high watermark fails after this long (several fetches agree).
BEYOND_END_CONFIRM_S = 1.0
# Probing the real end of a partition takes one fetch; give up after this long.
PROBE_TIMEOUT_S = 5.0

# librdkafka properties a pipeline's CONFIG may set (SingleStore passes CONFIG to its Kafka
# client). Only connection security and identity: the engine owns everything that decides what
# is read and committed (group.id, offsets, auto commit, fetch sizes), so those are refused
# rather than silently overridden.
CONFIG_KEYS = frozenset({
    "client.id",
    "security.protocol",
    "sasl.mechanism",
    "sasl.mechanisms",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.endpoint.identification.algorithm",
    "ssl.cipher.suites",
})
# Secrets CREDENTIALS may set. Their values never appear in a log, an error message or SHOW
# CREATE PIPELINE (SingleStore hides credentials from non-SUPER users; the local engine always).
CREDENTIAL_KEYS = frozenset({
    "sasl.username",
    "sasl.password",
    "ssl.key.password",
    "ssl.key.pem",
})

# Topic-level metadata errors that mean "no partitions to read yet", not a failure.
_NO_TOPIC_YET = (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError.LEADER_NOT_AVAILABLE)


def client_options(
    pipeline: str, config: Mapping[str, object], credentials: Mapping[str, object]
) -> dict[str, str | int | bool]:
    """The librdkafka properties of a pipeline's CONFIG and CREDENTIALS JSON objects.

    Raises :class:`UnsupportedOption` naming the first key outside :data:`CONFIG_KEYS` /
    :data:`CREDENTIAL_KEYS` (checked at CREATE and ALTER, so nothing is silently ignored), and
    :class:`EngineError` for a value that is not a string, number or boolean.
    """
    options: dict[str, str | int | bool] = {}
    for clause, given, allowed in (("CONFIG", config, CONFIG_KEYS),
                                   ("CREDENTIALS", credentials, CREDENTIAL_KEYS)):
        for key, value in given.items():
            if key not in allowed:
                hint = "allowed keys: " + ", ".join(sorted(allowed))
                if key in CREDENTIAL_KEYS:
                    hint = "put secrets in CREDENTIALS"
                raise UnsupportedOption(pipeline, f"{clause} key {key!r}", hint)
            if not isinstance(value, str | int | bool):
                raise EngineError(f"pipeline '{pipeline}': {clause} key {key!r} needs a string, "
                                  f"number or boolean, not {type(value).__name__}")
            options[key] = value
    return options


class KafkaReadError(EngineError):
    """A broker failure while reading; the message names ``topic[partition]@offset``."""

    code = CODE_EXTRACT


class KafkaUnreachable(KafkaReadError, ConnectionError):
    """No broker answered (metadata or ListOffsets timed out or failed)."""


class KafkaStalled(KafkaReadError, TimeoutError):
    """A read made no progress for STALL_TIMEOUT_S although the partition has data there."""


class OffsetOutOfRange(KafkaReadError):
    """The start offset lies beyond the end of the partition."""


class MessageTooLarge(KafkaReadError):
    """The broker answered a fetch with more than the consumer takes: a message there is larger
    than the engine reads. The data's fault, not the broker's: it is the same on every try."""


@dataclass(frozen=True)
class Message:
    offset: int
    value: bytes
    timestamp: int = -1  # the broker's milliseconds (-1: none); part of a cursor's history mark

    def history_mark(self) -> str:
        """What this message was, stored with the cursor after it: if the broker later holds
        another message at this offset (restarted and refilled, topic re-created), the
        partition's history changed and the cursor means nothing (runner step 1).

        >>> Message(7, b"a,b", 1700000000000).history_mark()
        '7:1700000000000:1eb7c54d52831bbfe8942af0b1c56b74'
        """
        digest = hashlib.sha256(self.value).hexdigest()[:32]
        return f"{self.offset}:{self.timestamp}:{digest}"


@dataclass(frozen=True)
class Watermarks:
    """``low`` = earliest offset still held, ``high`` = offset after the last message."""

    low: int
    high: int


@dataclass
class PartitionData:
    partition: int
    start: int
    end: int  # exclusive: the cursor after this batch partition commits
    messages: list[Message] = field(default_factory=list)

    @property
    def size_bytes(self) -> int:
        return sum(len(m.value) for m in self.messages)


class _LibrdkafkaLog:
    """Receives librdkafka's log lines (served from consume/poll, never written to stderr).

    librdkafka logs every refused connection and retry at error level; the failures that matter
    reach the caller as exceptions naming ``topic[partition]@offset``, so the lines themselves go
    to this module's logger at DEBUG (``--log-level DEBUG`` on the engine shows them).
    """

    def log(self, level: int, fmt: str, *args: Any) -> None:
        log.debug("librdkafka: " + fmt, *args)


class Extractor:
    """One librdkafka consumer for one pipeline's topic; not thread-safe (one per runner)."""

    def __init__(
        self, bootstrap_servers: Sequence[str], topic: str, *, client_id: str,
        options: Mapping[str, str | int | bool] | None = None,
    ) -> None:
        """``options``: the pipeline's CONFIG/CREDENTIALS properties (:func:`client_options`),
        applied over the engine's own settings."""
        self.topic = topic
        self._servers = ",".join(bootstrap_servers)
        self._last_error: KafkaError | None = None
        self._oversize: str | None = None  # librdkafka refused a response as too large
        extra = dict(options or {})
        # Values of secrets, blanked out of any librdkafka text this class puts in a message.
        self._secrets = [str(v) for k, v in extra.items() if k in CREDENTIAL_KEYS and str(v)]
        self._fetch_wait_ms = FETCH_MAX_WAIT_MS
        self._settings: dict[str, Any] = {
                "bootstrap.servers": self._servers,
                "client.id": client_id,
                "group.id": client_id,  # required by librdkafka; never joined (assign only)
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "error",  # handled in read(): retention vs beyond the end
                "enable.partition.eof": False,
                "allow.auto.create.topics": False,
                "fetch.wait.max.ms": FETCH_MAX_WAIT_MS,
                "max.partition.fetch.bytes": MAX_PARTITION_FETCH_BYTES,
                "fetch.max.bytes": FETCH_MAX_BYTES,
                "receive.message.max.bytes": RECEIVE_MESSAGE_MAX_BYTES,
                "queued.max.messages.kbytes": QUEUED_MAX_MESSAGES_KBYTES,
                "topic.metadata.refresh.interval.ms": 5_000,
                "socket.timeout.ms": 30_000,
                "log.connection.close": False,  # Tansu closes idle connections: not news
                "logger": _LibrdkafkaLog(),
                "error_cb": self._on_error,
                **extra,
        }
        try:
            self._consumer = Consumer(self._settings)
        except KafkaException as exc:
            raise KafkaUnreachable(
                f"cannot create a Kafka consumer for {self._servers} topic {topic!r}: "
                f"{self._redact(_text(exc))}") from None

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "<hidden>")
        return text

    def _wait_longer(self, partition: int, position: int) -> bool:
        """A new consumer with a longer fetch wait, assigned at ``position``; False once the
        wait is at its maximum already."""
        if self._fetch_wait_ms >= MAX_FETCH_WAIT_MS:
            return False
        self._fetch_wait_ms = min(max(self._fetch_wait_ms * 4, 10), MAX_FETCH_WAIT_MS)
        log.info("%s[%d]@%d: no data within a %d ms fetch wait; waiting up to %d ms", self.topic,
                 partition, position, self._settings["fetch.wait.max.ms"], self._fetch_wait_ms)
        self._settings["fetch.wait.max.ms"] = self._fetch_wait_ms
        old = self._consumer
        self._consumer = Consumer(self._settings)
        try:
            old.close()
        except Exception:  # noqa: BLE001 - the old one is dropped either way
            log.debug("closing the replaced consumer failed", exc_info=True)
        self._consumer.assign([TopicPartition(self.topic, partition, position)])
        return True

    def _on_error(self, error: KafkaError) -> None:
        self._last_error = error
        if "receive.message.max.bytes" in error.str():
            self._oversize = error.str()
        log.debug("kafka %s (topic %s): %s", self._servers, self.topic, error.str())

    def close(self) -> None:
        try:
            self._consumer.close()
        except Exception:  # noqa: BLE001 - closing a broken consumer must not mask the cause
            log.debug("closing consumer failed", exc_info=True)

    def partitions(self) -> list[int]:
        """The topic's partitions, refreshed from metadata (new partitions appear here)."""
        try:
            metadata = self._consumer.list_topics(self.topic, timeout=REQUEST_TIMEOUT_S)
        except KafkaException as exc:
            raise KafkaUnreachable(
                f"cannot read the metadata of topic {self.topic!r} from Kafka at "
                f"{self._servers}: {_text(exc)}") from exc
        found = metadata.topics.get(self.topic)
        if found is None or (found.error is not None and found.error.code() in _NO_TOPIC_YET):
            return []
        if found.error is not None:
            raise KafkaReadError(f"metadata of topic {self.topic!r} from Kafka at "
                                 f"{self._servers}: {found.error.str()}")
        return sorted(found.partitions)

    def watermarks(self, partitions: Iterable[int]) -> dict[int, Watermarks]:
        """Earliest and true end of each partition (see the module docstring on ListOffsets)."""
        listed: dict[int, tuple[int, int]] = {}
        for partition in partitions:
            tp = TopicPartition(self.topic, partition)
            try:
                offsets = self._consumer.get_watermark_offsets(
                    tp, timeout=REQUEST_TIMEOUT_S, cached=False)
            except KafkaException as exc:
                raise KafkaUnreachable(
                    f"cannot list the offsets of {self.topic}[{partition}] from Kafka at "
                    f"{self._servers}: {_text(exc)}") from exc
            if offsets is None:
                raise KafkaUnreachable(
                    f"no answer listing the offsets of {self.topic}[{partition}] from Kafka at "
                    f"{self._servers} within {REQUEST_TIMEOUT_S:.0f} s")
            listed[partition] = (int(offsets[0]), int(offsets[1]))
        highs = self._probe_ends(listed)
        return {p: Watermarks(low, highs.get(p, end)) for p, (low, end) in listed.items()}

    def _probe_ends(self, listed: dict[int, tuple[int, int]]) -> dict[int, int]:
        """Fetch from just before each listed end and read the high watermark of the response.

        A partition whose listed end is its low watermark is empty (Tansu's answer is then
        right). For the others, ``listed end - 1`` is the base offset of the last record batch;
        once a message of that fetch arrives, the cached watermark is the fetch's high watermark.
        """
        pending = {p: max(low, end - 1) for p, (low, end) in listed.items() if end > low}
        if not pending:
            return {}
        self._consumer.assign([TopicPartition(self.topic, p, o) for p, o in pending.items()])
        highs: dict[int, int] = {}
        deadline = time.monotonic() + PROBE_TIMEOUT_S
        try:
            while pending and time.monotonic() < deadline:
                msg = self._consumer.poll(POLL_TIMEOUT_S)
                if msg is None or msg.error() is not None:
                    continue
                partition, offset = msg.partition(), msg.offset()
                if partition not in pending or offset is None or offset < pending[partition]:
                    continue
                del pending[partition]
                _low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(self.topic, partition), cached=True)
                highs[partition] = max(listed[partition][1], int(high))
        finally:
            self._consumer.unassign()
        for partition in pending:  # no fetch answered in time: the listed end is all we have
            log.debug("%s[%d]: probing the end timed out; using ListOffsets' %d", self.topic,
                      partition, listed[partition][1])
        return highs

    def read(
        self, partition: int, start: int, max_messages: int, *, end_hint: int | None = None
    ) -> PartitionData:
        """Messages from ``start`` up to ``max_messages`` or the partition's end, in order.

        ``end_hint`` is a known end (from :meth:`watermarks`); without it the read follows the
        high watermark of each fetch, so messages produced meanwhile are included up to the limit.
        """
        return next(self.read_chunks(partition, start, max_messages, end_hint=end_hint))

    def read_chunks(
        self, partition: int, start: int, max_messages: int, *, end_hint: int | None = None,
        chunk_messages: int | None = None, chunk_bytes: int | None = None,
        uncounted: int = 0,
    ) -> Generator[PartitionData, None, None]:
        """:meth:`read` in consecutive pieces: each chunk starts where the previous one ended
        and the last one ends where :meth:`read` would. A chunk is handed over once it holds
        ``chunk_messages`` messages or ``chunk_bytes`` bytes (None: no limit, one chunk).

        The partition stays assigned between chunks (librdkafka keeps prefetching, bounded by
        ``queued.max.messages.kbytes``); closing the generator early unassigns it. The first
        ``uncounted`` offsets do not count towards ``chunk_bytes`` (a message read only to be
        compared, the runner's history check).
        """
        limit = start + max_messages
        target = min(limit, end_hint) if end_hint is not None else limit
        data = PartitionData(partition, start, start)
        position = start
        if position >= target:
            yield data
            return
        size = 0
        tp = TopicPartition(self.topic, partition)
        self._consumer.assign([TopicPartition(self.topic, partition, start)])
        self._last_error = None
        self._oversize = None
        last_progress = slow_since = time.monotonic()
        high: int | None = None
        try:
            while position < target:
                # Asking for exactly what is left lets the last call return without waiting.
                wanted = min(CONSUME_BATCH, target - position)
                if chunk_messages is not None:  # a chunk never holds more than it asked for
                    wanted = min(wanted, chunk_messages - len(data.messages))
                batch = self._consumer.consume(num_messages=max(1, wanted),
                                               timeout=POLL_TIMEOUT_S)
                if self._oversize is not None and not batch:
                    raise MessageTooLarge(
                        f"cannot read {self.topic}[{partition}]@{position}: the broker's answer "
                        f"is larger than the engine takes ({RECEIVE_MESSAGE_MAX_BYTES} bytes; "
                        f"librdkafka: {self._oversize}): a message at or after offset "
                        f"{position} is too large to read. Skip it with ALTER PIPELINE ... "
                        "SET OFFSETS")
                for msg in batch:
                    error = msg.error()
                    if error is not None:
                        position = self._on_read_error(error, partition, position)
                        continue
                    offset = msg.offset()
                    if offset is None or offset < position or offset >= limit:
                        continue
                    value = msg.value()
                    if value is None:
                        value = b""
                    data.messages.append(Message(offset, value, msg.timestamp()[1]))
                    if offset >= start + uncounted:
                        size += len(value)
                    position = offset + 1
                    if chunk_bytes is not None and size >= chunk_bytes and position < target:
                        # Full by bytes in the middle of what consume returned: the byte cap
                        # holds to the message, whatever the fetch brought.
                        data.end = position
                        yield data
                        data, size = PartitionData(partition, position, position), 0
                        last_progress = time.monotonic()
                # Offsets may have gaps (compaction, transaction markers): the consumer's
                # position moves past them even when no message is delivered.
                (current,) = self._consumer.position([tp])
                if current.offset is not None and current.offset > position:
                    position = min(current.offset, limit)
                cached = self._consumer.get_watermark_offsets(tp, cached=True)
                if cached is not None and cached[1] >= 0:
                    high = int(cached[1])
                    if end_hint is None:
                        target = min(limit, max(high, position))
                if position > data.end:
                    data.end = position
                    last_progress = slow_since = time.monotonic()
                elif (high is None or position < high) and \
                        time.monotonic() - slow_since > SLOW_FETCH_S and \
                        self._wait_longer(partition, position):
                    slow_since = time.monotonic()
                elif high is not None and position > high and \
                        time.monotonic() - last_progress > BEYOND_END_CONFIRM_S:
                    # Tansu answers a fetch beyond the end with no records and no error.
                    raise OffsetOutOfRange(
                        f"{self.topic}[{partition}]@{position} is beyond the end of the "
                        f"partition (high watermark {high}, Kafka at {self._servers})")
                elif time.monotonic() - last_progress > STALL_TIMEOUT_S:
                    cause = f"; last broker error: {self._last_error.str()}" \
                        if self._last_error is not None else ""
                    raise KafkaStalled(
                        f"no progress reading {self.topic}[{partition}]@{position} for "
                        f"{STALL_TIMEOUT_S:.0f} s (Kafka at {self._servers}, high watermark "
                        f"{high}, wanted up to {target}){cause}")
                full = (chunk_messages is not None and len(data.messages) >= chunk_messages) \
                    or (chunk_bytes is not None and size >= chunk_bytes)
                if full and data.end < target:
                    yield data  # every message is below data.end == position
                    data, size = PartitionData(partition, data.end, data.end), 0
                    # The consumer of the chunks may take long: no stall while it had them.
                    last_progress = time.monotonic()
        finally:
            self._consumer.unassign()
        data.end = min(position, limit)
        data.messages = [m for m in data.messages if m.offset < data.end]
        yield data

    def _on_read_error(self, error: KafkaError, partition: int, position: int) -> int:
        """An error event from consume: returns the position to go on from, or raises."""
        if error.fatal():
            raise KafkaReadError(f"reading {self.topic}[{partition}]@{position} from Kafka at "
                                 f"{self._servers}: {error.str()}")
        if error.code() != KafkaError._AUTO_OFFSET_RESET:
            # Transient (broker down, leader moving): librdkafka retries by itself; a read that
            # stays stuck ends in KafkaStalled, which quotes this error.
            self._last_error = error
            log.debug("%s[%d]@%d: %s", self.topic, partition, position, error.str())
            return position
        tp = TopicPartition(self.topic, partition)
        try:
            low, listed = self._consumer.get_watermark_offsets(
                tp, timeout=REQUEST_TIMEOUT_S, cached=False)
        except KafkaException as exc:
            raise KafkaUnreachable(f"{self.topic}[{partition}]@{position} is out of range and "
                                   f"its offsets cannot be listed: {_text(exc)}") from exc
        if position < low:
            # Retention removed the start of the range: go on from the earliest offset.
            log.warning("%s[%d]@%d is before the earliest offset %d; reading from there",
                        self.topic, partition, position, low)
            self._consumer.assign([TopicPartition(self.topic, partition, low)])
            return low
        raise OffsetOutOfRange(
            f"{self.topic}[{partition}]@{position} is beyond the end of the partition "
            f"(earliest offset {low}, ListOffsets end {listed}): {error.str()}")


def pipeline_extractor(stmt: CreatePipeline, *, client_id: str) -> Extractor:
    """The extractor for a pipeline's topic, with its CONFIG and CREDENTIALS applied."""
    return Extractor(stmt.source.bootstrap_servers(), stmt.source.topic, client_id=client_id,
                     options=client_options(stmt.name, stmt.config_dict(),
                                            stmt.credentials_dict()))


def _text(exc: KafkaException) -> str:
    """The librdkafka error text of a KafkaException (its first argument is a KafkaError)."""
    first = exc.args[0] if exc.args else exc
    return first.str() if isinstance(first, KafkaError) else str(first)

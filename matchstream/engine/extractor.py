"""Reading Kafka partitions by offset range: the engine's extract step.

The extractor never joins a consumer group and never commits offsets to Kafka: the pipeline's
cursors live in the database, next to the rows they account for (docs/engine.md, "Exactly once").

The end of a partition is taken from fetch responses (their high watermark), not from
ListOffsets: Tansu 0.6 answers ListOffsets(LATEST) with the base offset of the last record batch
plus one, which lies *inside* the partition whenever producers batch, so a pipeline trusting it
would leave the tail of a topic unread until more data arrives (tests/integration/engine).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

__all__ = ["Extractor", "Message", "PartitionData", "Watermarks"]

log = logging.getLogger(__name__)

# How long one poll waits for the broker. The engine reacts to STOP between polls, so this bounds
# how late a STOP is seen during extraction; longer polls cost nothing on a busy topic.
POLL_TIMEOUT_MS = 200
# The broker holds an empty fetch this long before answering. Kafka's default (500 ms) would make
# every idle check half a second slower than BATCH_INTERVAL asks for.
FETCH_MAX_WAIT_MS = 100
# Per-partition fetch size. Larger messages still arrive (brokers return at least one whole
# message, KIP-74); this only sets how much is read ahead per round trip.
MAX_PARTITION_FETCH_BYTES = 8 * 1024 * 1024
# Records handed over per poll. kafka-python's default (500) makes the per-poll overhead
# dominate: measured 29k msgs/s at 500 and 37k at 10,000 on the benchmark machine.
MAX_POLL_RECORDS = 10_000
# A read that makes no progress for this long while the high watermark says data is there fails
# the batch partition instead of hanging the pipeline.
STALL_TIMEOUT_S = 30.0
# Probing the real end of a partition takes one fetch; give up after this long.
PROBE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Message:
    offset: int
    value: bytes


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


class Extractor:
    """One KafkaConsumer for one pipeline's topic; not thread-safe (one per runner)."""

    def __init__(self, bootstrap_servers: Sequence[str], topic: str, *, client_id: str) -> None:
        self.topic = topic
        try:
            self._consumer = KafkaConsumer(
                bootstrap_servers=list(bootstrap_servers),
                client_id=client_id,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
                max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
                fetch_max_bytes=64 * 1024 * 1024,
                max_poll_records=MAX_POLL_RECORDS,
                metadata_max_age_ms=5_000,
                request_timeout_ms=30_000,
            )
        except KafkaError as exc:
            raise ConnectionError(
                f"cannot reach Kafka at {','.join(bootstrap_servers)} for topic {topic!r}: {exc}"
            ) from exc

    def close(self) -> None:
        try:
            self._consumer.close()
        except Exception:  # noqa: BLE001 - closing a broken consumer must not mask the cause
            log.debug("closing consumer failed", exc_info=True)

    def partitions(self) -> list[int]:
        """The topic's partitions, refreshed from metadata (new partitions appear here)."""
        found = self._consumer.partitions_for_topic(self.topic)
        return sorted(found) if found else []

    def watermarks(self, partitions: Iterable[int]) -> dict[int, Watermarks]:
        """Earliest and true end of each partition (see the module docstring on ListOffsets)."""
        tps = [TopicPartition(self.topic, p) for p in partitions]
        if not tps:
            return {}
        lows = self._consumer.beginning_offsets(tps)
        listed = self._consumer.end_offsets(tps)
        return {
            tp.partition: Watermarks(lows[tp], self._probe_end(tp, lows[tp], listed[tp]))
            for tp in tps
        }

    def _probe_end(self, tp: TopicPartition, low: int, listed_end: int) -> int:
        """Fetch from just before the listed end and read the high watermark of the response."""
        self._consumer.assign([tp])
        self._consumer.seek(tp, max(low, listed_end - 1))
        deadline = time.monotonic() + PROBE_TIMEOUT_S
        high: int | None = None
        while time.monotonic() < deadline:
            self._consumer.poll(timeout_ms=POLL_TIMEOUT_MS, max_records=1, update_offsets=False)
            high = self._consumer.highwater(tp)
            if high is not None:
                break
        return max(listed_end, high or 0)

    def read(
        self, partition: int, start: int, max_messages: int, *, end_hint: int | None = None
    ) -> PartitionData:
        """Messages from ``start`` up to ``max_messages`` or the partition's end, in order.

        ``end_hint`` is a known end (from :meth:`watermarks`); the read also follows the high
        watermark of each fetch, so messages produced meanwhile are included up to the limit.
        """
        tp = TopicPartition(self.topic, partition)
        self._consumer.assign([tp])
        self._consumer.seek(tp, start)
        limit = start + max_messages
        target = min(limit, end_hint) if end_hint is not None else limit
        data = PartitionData(partition, start, start)
        position = start
        last_progress = time.monotonic()
        while position < target:
            records = self._consumer.poll(timeout_ms=POLL_TIMEOUT_MS).get(tp, [])
            for record in records:
                if record.offset >= limit:
                    break
                value = record.value if record.value is not None else b""
                data.messages.append(Message(record.offset, value))
            new_position = self._consumer.position(tp)
            high = self._consumer.highwater(tp)
            if high is not None and end_hint is None:
                target = min(limit, high)
            if new_position is not None and new_position > position:
                position = new_position
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > STALL_TIMEOUT_S:
                raise TimeoutError(
                    f"no progress reading {self.topic}[{partition}] at offset {position} "
                    f"for {STALL_TIMEOUT_S:.0f} s (high watermark {high})"
                )
        # Offsets may have gaps (compaction, transaction markers): the batch partition covers
        # everything up to where the read stopped, not just up to the last message.
        data.end = min(position, limit)
        data.messages = [m for m in data.messages if m.offset < data.end]
        return data

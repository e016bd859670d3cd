"""`matchstream produce`: one Kafka message per CSV row, checked against the feature spec first.

Each data row is sent as its own message, byte for byte as it stands in the file (without the line
end), keyed by the spec's id column; the header is never sent. Rows are checked with the very
decoder the transforms use (:func:`matchstream.ml.features.decode_batch`), so a row the producer
accepts is a row the pipeline can load, and a rejected row is reported as ``file:line: reason``
instead of failing a batch later.
"""

from __future__ import annotations

import csv
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matchstream.errors import MatchstreamError

__all__ = [
    "CsvFileError",
    "ProduceReport",
    "Rejected",
    "check_file",
    "produce_files",
    "role_for_topic",
]

# Rows are checked in chunks: big enough for the vectorised decoder, small enough that a huge
# file never sits in memory whole.
CHECK_CHUNK_ROWS = 10_000
ROLES = ("training", "scoring")


class CsvFileError(MatchstreamError):
    """A CSV file cannot be produced at all (empty, unreadable, wrong header); names file:line."""

    def __init__(self, path: Path | str, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path, self.line, self.reason = str(path), line, reason


@dataclass(frozen=True)
class Rejected:
    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


@dataclass
class ProduceReport:
    sent: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    # partition -> offset after the last acknowledged message: what a consumer (a pipeline
    # cursor) must reach to have read everything this run sent.
    end_offsets: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Row:
    line: int
    key: bytes
    value: bytes


def role_for_topic(topic: str, role: str | None) -> str:
    """Training rows carry the label, scoring rows must not; the project's topics say which."""
    if role:
        return role
    if topic in ROLES:
        return topic
    raise MatchstreamError(
        f"topic {topic!r}: say whether its rows carry the label with --role training|scoring"
    )


def _some(names: list[str], shown: int = 8) -> str:
    if len(names) <= shown:
        return ", ".join(names)
    return f"{', '.join(names[:shown])}, ... ({len(names)} in all)"


def _header_problem(header: list[str], expected: tuple[str, ...], label: str, role: str) -> str:
    if header == list(expected):
        return ""
    got, want = set(header), set(expected)
    parts = []
    if role == "scoring" and label in got:
        parts.append(f"column {label!r} is the label: a scoring file must not carry it")
    missing = [c for c in expected if c not in got]
    extra = [c for c in header if c not in want and not (role == "scoring" and c == label)]
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if missing:
        parts.append(f"missing column(s) {_some(missing)}")
    if extra:
        parts.append(f"unexpected column(s) {_some(extra)}")
    if duplicated:
        parts.append(f"repeated column(s) {', '.join(duplicated)}")
    if not parts:
        first = next(i for i, (a, b) in enumerate(zip(header, expected, strict=False)) if a != b)
        parts.append(
            f"columns out of order: field {first + 1} is {header[first]!r}, "
            f"the spec expects {expected[first]!r}"
        )
    return "wrong header for " + role + " rows: " + "; ".join(parts)


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            yield number, raw.rstrip(b"\r\n")


def check_file(
    path: Path,
    *,
    spec: Any,
    role: str,
    validate: bool = True,
) -> tuple[list[_Row], list[Rejected]]:
    """1. Check the header against the spec. 2. Check every data row with the transforms'
    decoder (unless ``validate`` is off). Returns the rows to send and the rejected ones."""
    from matchstream.ml.features import decode_batch

    with_label = role == "training"
    expected = spec.input_columns(with_label=with_label)
    lines = _lines(path)
    try:
        first = next(lines)
    except StopIteration:
        raise CsvFileError(path, 1, "empty file: expected a header line and data rows") from None
    except OSError as exc:
        raise CsvFileError(path, 0, f"cannot read: {exc}") from exc
    try:
        header = next(csv.reader([first[1].decode("utf-8").lstrip("\ufeff")]), [])
    except UnicodeDecodeError as exc:
        raise CsvFileError(path, 1, f"header is not valid UTF-8: {exc}") from exc
    problem = _header_problem([h.strip() for h in header], expected, spec.label, role)
    if problem:
        raise CsvFileError(path, 1, problem)
    id_index = expected.index(spec.id)

    accepted: list[_Row] = []
    rejected: list[Rejected] = []
    chunk: list[tuple[int, bytes]] = []

    def flush() -> None:
        if not chunk:
            return
        bad_lines: dict[int, str] = {}
        if validate:
            payloads = [raw for _, raw in chunk]
            batch = decode_batch(payloads, spec, with_label=with_label, skip_bad=True)
            bad_lines = {chunk[b.index][0]: b.reason for b in batch.skipped}
        for number, raw in chunk:
            if number in bad_lines:
                reason = "empty line" if not raw.strip() else bad_lines[number]
                rejected.append(Rejected(str(path), number, reason))
                continue
            try:
                key = next(csv.reader([raw.decode("utf-8", "replace")]))[id_index]
            except (IndexError, StopIteration):
                key = ""
            accepted.append(_Row(number, key.encode(), raw))
        chunk.clear()

    for number, raw in lines:
        chunk.append((number, raw))
        if len(chunk) >= CHECK_CHUNK_ROWS:
            flush()
    flush()
    return accepted, rejected


class _RateLimiter:
    """Spreads sends evenly at ``rate`` rows per second (no bursts after a pause)."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self.next_at = time.monotonic()

    def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        if self.next_at > now:
            time.sleep(self.next_at - now)
        self.next_at = max(self.next_at, now) + self.interval


def produce_files(
    topic: str,
    paths: list[Path],
    *,
    bootstrap: str,
    spec: Any,
    role: str,
    validate: bool = True,
    rate: float | None = None,
    loop: bool = False,
    shuffle: bool = False,
    seed: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] = lambda text: print(text, file=sys.stderr),
) -> ProduceReport:
    """Check every file, then send the accepted rows; every send is acknowledged or raises.

    Files are checked before anything is sent, so a file with a wrong header stops the run
    before a single row of the others went out.
    """
    from kafka import KafkaProducer
    from kafka.errors import KafkaError
    from tqdm import tqdm

    report = ProduceReport()
    rows: list[_Row] = []
    for path in paths:
        accepted, rejected = check_file(path, spec=spec, role=role, validate=validate)
        for bad in rejected:
            log(f"rejected {bad}")
        report.rejected.extend(rejected)
        rows.extend(accepted)
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",  # a row counts as sent only once the broker has it
        retries=5,
        linger_ms=5,
    )
    limiter = _RateLimiter(rate)
    rng = random.Random(seed)  # noqa: S311 - demo row order, not a secret
    try:
        while True:
            order = list(rows)
            if shuffle:
                rng.shuffle(order)
            futures = []
            with tqdm(
                total=len(order),
                desc=topic,
                unit="row",
                disable=not progress,
                file=sys.stderr,
            ) as bar:
                for row in order:
                    limiter.wait()
                    futures.append(producer.send(topic, key=row.key or None, value=row.value))
                    bar.update(1)
                producer.flush()
            failures = []
            for row, future in zip(order, futures, strict=True):
                try:
                    meta = future.get(timeout=30)
                    end = report.end_offsets.get(meta.partition, 0)
                    report.end_offsets[meta.partition] = max(end, meta.offset + 1)
                except KafkaError as exc:
                    failures.append(f"line {row.line}: {exc}")
            if failures:
                raise MatchstreamError(
                    f"{len(failures)} row(s) were not acknowledged by the broker "
                    f"({bootstrap}); first: {failures[0]}"
                )
            report.sent += len(order)
            if not loop or not order:
                break
    finally:
        producer.close()
    return report

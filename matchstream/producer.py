"""`matchstream produce`: one Kafka message per CSV row, checked against the feature spec first.

Each data row is sent as its own message, byte for byte as it stands in the file (without the line
end), keyed by the spec's id column; the header is never sent. Rows are checked with the very
decoder the transforms use (:func:`matchstream.ml.features.decode_batch`; for ``id,match``
outcome rows :func:`matchstream.ml.outcome_rows.decode_outcomes`), so a row the producer accepts
is a row the pipeline can load, and a rejected row is reported as ``file:line: reason`` instead of
failing a batch later.
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
    "CheckedFile",
    "CsvFileError",
    "KafkaUnavailable",
    "ProduceReport",
    "Rejected",
    "check_file",
    "produce_files",
    "role_for_topic",
]

# Rows are checked in chunks: big enough for the vectorised decoder, small enough that a huge
# file never sits in memory whole.
CHECK_CHUNK_ROWS = 10_000
# What a topic's rows are: training rows carry the label, scoring rows do not, outcome rows are
# the spec's id and label only (the true outcome of a scored date, sent when it is known).
ROLES = ("training", "scoring", "outcomes")


class KafkaUnavailable(MatchstreamError):
    """The broker did not take the rows; ``sent`` says how many it had acknowledged before."""

    def __init__(self, bootstrap: str, reason: str, *, sent: int) -> None:
        super().__init__(f"Kafka at {bootstrap}: {reason} ({sent} rows were sent)")
        self.bootstrap, self.reason, self.sent = bootstrap, reason, sent


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
    path: Path
    line: int
    key: bytes
    value: bytes


def role_for_topic(topic: str, role: str | None) -> str:
    """Training rows carry the label, scoring rows must not, outcome rows are ``id,label``;
    the project's topics say which."""
    if role:
        return role
    if topic in ROLES:
        return topic
    raise MatchstreamError(
        f"topic {topic!r}: say what its rows are with --role training|scoring|outcomes"
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


def _chunks(path: Path) -> Iterator[list[tuple[int, bytes]]]:
    """The data lines (after the header) in chunks of :data:`CHECK_CHUNK_ROWS`."""
    chunk: list[tuple[int, bytes]] = []
    for number, raw in _lines(path):
        if number == 1:
            continue
        chunk.append((number, raw))
        if len(chunk) >= CHECK_CHUNK_ROWS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@dataclass(frozen=True)
class CheckedFile:
    """A file whose header fits the spec; ``rejected`` lists the data rows that do not."""

    path: Path
    role: str
    id_index: int
    rows: int
    rejected: list[Rejected]


def check_file(path: Path, *, spec: Any, role: str, validate: bool = True) -> CheckedFile:
    """1. Check the header against the spec. 2. Check every data row with the transforms'
    decoder (unless ``validate`` is off), one chunk at a time: only the rejected rows are kept,
    so a huge file never sits in memory."""
    from matchstream.ml.outcome_rows import outcome_columns

    with_label = role == "training"
    expected = outcome_columns(spec) if role == "outcomes" else spec.input_columns(
        with_label=with_label)
    if path.exists() and not path.is_file():
        # Rows are checked in one pass and sent in a second: a pipe would be empty the second
        # time, and the run would say "sent 0 rows" with every row lost.
        raise CsvFileError(path, 0, "not a regular file (a pipe or a process substitution can "
                           "be read only once): write the rows to a file first")
    try:
        first = next(_lines(path), None)
    except OSError as exc:
        raise CsvFileError(path, 0, f"cannot read: {exc.strerror or exc}") from exc
    if first is None:
        raise CsvFileError(path, 1, "empty file: expected a header line and data rows")
    try:
        header = next(csv.reader([first[1].decode("utf-8").lstrip("\ufeff")]), [])
    except UnicodeDecodeError as exc:
        raise CsvFileError(path, 1, f"header is not valid UTF-8: {exc}") from exc
    problem = _header_problem([h.strip() for h in header], expected, spec.label, role)
    if problem:
        raise CsvFileError(path, 1, problem)

    rejected: list[Rejected] = []
    rows = 0
    for chunk in _chunks(path):
        rows += len(chunk)
        if not validate:
            continue
        for bad in _bad_rows([raw for _, raw in chunk], spec, role):
            number, raw = chunk[bad.index]
            reason = "empty line" if not raw.strip() else bad.reason
            rejected.append(Rejected(str(path), number, reason))
    return CheckedFile(path, role, expected.index(spec.id), rows, rejected)


def _bad_rows(lines: list[bytes], spec: Any, role: str) -> list[Any]:
    """The rows of a chunk the role's transform would skip, as BadRow (``index`` in ``lines``)."""
    if role == "outcomes":
        from matchstream.ml.outcome_rows import decode_outcomes

        return decode_outcomes(lines, spec, skip_bad=True).skipped
    from matchstream.ml.features import decode_batch

    return list(decode_batch(lines, spec, with_label=role == "training", skip_bad=True).skipped)


def _key(raw: bytes, id_index: int) -> bytes:
    if b'"' not in raw:
        fields = raw.split(b",", id_index + 1)
        return fields[id_index] if len(fields) > id_index else b""
    parsed = next(csv.reader([raw.decode("utf-8", "replace")]), [])
    return parsed[id_index].encode() if len(parsed) > id_index else b""


def _accepted_chunks(checked: CheckedFile) -> Iterator[list[_Row]]:
    """Second pass over the file: the rows to send, chunk by chunk, rejected ones left out."""
    skip = {r.line for r in checked.rejected}
    for chunk in _chunks(checked.path):
        yield [
            _Row(checked.path, n, _key(raw, checked.id_index), raw)
            for n, raw in chunk
            if n not in skip
        ]


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
    pace: Callable[[bytes], None] | None = None,
    on_send: Callable[[bytes], None] | None = None,
) -> ProduceReport:
    """1. Check every file (before anything is sent, so a wrong header in one file stops the
    run before a row of the others went out). 2. Send the accepted rows chunk by chunk; a chunk
    is flushed and every send acknowledged before the next, so memory stays bounded and a failure
    names the first row the broker did not take. ``shuffle`` needs every row in memory.

    ``pace(key)`` is called before each row is sent (after ``rate``'s wait) and may block until
    that row is due; ``on_send(key)`` right after the row is handed to the client. The demo uses
    them to send each outcome a delay after its scoring row."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError
    from tqdm import tqdm

    if rate is not None and rate <= 0:
        raise MatchstreamError(f"--rate {rate}: must be a positive number of rows per second")
    report = ProduceReport()
    checked = [check_file(path, spec=spec, role=role, validate=validate) for path in paths]
    for file in checked:
        for bad in file.rejected:
            log(f"rejected {bad}")
        report.rejected.extend(file.rejected)
    total = sum(f.rows - len(f.rejected) for f in checked)
    try:
        producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",  # a row counts as sent only once the broker has it
            retries=5,
            linger_ms=5,
            # An unreachable broker is reported after 10 s instead of kafka-python's 30.
            bootstrap_timeout_ms=10_000,
        )
    except KafkaError as exc:
        raise KafkaUnavailable(bootstrap, f"cannot connect: {exc}", sent=0) from exc
    limiter = _RateLimiter(rate)
    rng = random.Random(seed)  # noqa: S311 - demo row order, not a secret

    def rounds() -> Iterator[list[_Row]]:
        if not shuffle:
            for file in checked:
                yield from _accepted_chunks(file)
            return
        everything = [row for file in checked for chunk in _accepted_chunks(file) for row in chunk]
        rng.shuffle(everything)
        for start in range(0, len(everything), CHECK_CHUNK_ROWS):
            yield everything[start : start + CHECK_CHUNK_ROWS]

    try:
        while True:
            with tqdm(
                total=total, desc=topic, unit="row", disable=not progress, file=sys.stderr
            ) as bar:
                for chunk in rounds():
                    futures = []
                    for row in chunk:
                        limiter.wait()
                        if pace is not None:
                            pace(row.key)
                        futures.append(producer.send(topic, key=row.key or None, value=row.value))
                        if on_send is not None:
                            on_send(row.key)
                        bar.update(1)
                    producer.flush()
                    for row, future in zip(chunk, futures, strict=True):
                        try:
                            meta = future.get(timeout=30)
                        except KafkaError as exc:
                            raise KafkaUnavailable(
                                bootstrap,
                                f"line {row.line} of {row.path} (and maybe later ones) was not "
                                f"acknowledged: {exc}",
                                sent=report.sent,
                            ) from exc
                        report.sent += 1
                        end = report.end_offsets.get(meta.partition, 0)
                        report.end_offsets[meta.partition] = max(end, meta.offset + 1)
            if not loop or not total:
                break
    finally:
        producer.close()
    return report

"""The messages a demo transform leaves out, as rows of ``rejected_rows``.

The demo's training, scoring and outcomes pipelines run with ``--on-bad-row skip``: a bad message
must not stop them, but on SingleStore the stderr of a transform that succeeds is seen by no one,
so what they skip would be lost without a trace. ``transforms/rejects.py`` is a companion pipeline
on the same topic: it decodes every message with the very decoder and spec the demo transforms use
(:class:`~matchstream.ml.rowparse.RowDecoder`, the label included for training;
:class:`~matchstream.ml.outcome_rows.OutcomeDecoder` for ``id,match`` outcome rows) and prints one
row per message that decoder refuses, nothing for the others:

``batch_fingerprint, position, reason, message_bytes, message_sha256, message``

* ``batch_fingerprint``: SHA-256 of the batch's framed stdin (:func:`matchstream.framing.
  fingerprint`, what train.py records as ``training_metrics.input_fingerprint``);
* ``position``: the message's zero-based index in the batch;
* ``reason``: the bad row's reason, after ``column 'c': `` when a column is at fault (at most
  :data:`REASON_CHARS` characters, the width of the column);
* ``message_bytes`` and ``message_sha256``: the whole message's size and digest;
* ``message``: its first :data:`MESSAGE_PREFIX_BYTES` bytes, byte for byte (any bytes, not only
  UTF-8), escaped for LOAD DATA's default ``FIELDS ESCAPED BY '\\\\'``.

Small batches are decoded row by row without importing NumPy (a process starts per batch
partition, so start-up is the cost); above :data:`~matchstream.ml.pure_scorer.SMALL_BATCH`
messages the vectorised decoder of the training path takes over, with the same verdicts (the
parity tests hold the two paths together).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import Literal

from matchstream.framing import fingerprint, split_frames
from matchstream.ml.errors import BadRow
from matchstream.ml.outcome_rows import iter_outcome_rejects
from matchstream.ml.pure_scorer import SMALL_BATCH
from matchstream.ml.rowparse import RowDecoder, strip_newlines
from matchstream.ml.spec import FeatureSpec

__all__ = ["MESSAGE_PREFIX_BYTES", "REASON_CHARS", "REJECT_COLUMNS", "ROW_KINDS", "RowKind",
           "escape_field", "find_rejects", "format_reject", "reject_rows"]

# What a topic carries: training rows (with the label), scoring rows (without), outcome rows
# (``id,match``). The names are rejects.py's ``--rows`` and the producer's roles.
RowKind = Literal["training", "scoring", "outcomes"]
ROW_KINDS: tuple[RowKind, ...] = ("training", "scoring", "outcomes")

REJECT_COLUMNS = ("batch_fingerprint", "position", "reason", "message_bytes", "message_sha256",
                  "message")
# What of a message is kept: enough for any real CSV row; a bigger message keeps its size and
# digest whole, so nothing the user sent goes unrecorded.
MESSAGE_PREFIX_BYTES = 1 << 16
REASON_CHARS = 1024  # rejected_rows.reason VARCHAR(1024)

# LOAD DATA ... FIELDS ESCAPED BY '\\' reads these two-byte sequences back as the byte they
# stand for; every other byte may stand as it is (the column is binary, nothing is decoded).
_ESCAPES = {b"\\": b"\\\\", b"\t": b"\\t", b"\n": b"\\n", b"\r": b"\\r", b"\0": b"\\0"}


def escape_field(data: bytes) -> bytes:
    """``data`` as one field of a tab-separated line that LOAD DATA reads back byte for byte.

    >>> escape_field(b"a\\\\b\\tc\\nd\\x00e\\xff")
    b'a\\\\\\\\b\\\\tc\\\\nd\\\\0e\\xff'
    """
    if not any(b in data for b in _ESCAPES):
        return data
    for raw, escaped in _ESCAPES.items():  # the backslash first, so no escape is escaped again
        data = data.replace(raw, escaped)
    return data


def format_reject(batch_fingerprint: str, bad: BadRow, message: bytes) -> bytes:
    """One ``rejected_rows`` line for ``message`` (position ``bad.index``), newline included."""
    reason = f"column {bad.column!r}: {bad.reason}" if bad.column else bad.reason
    if len(reason) > REASON_CHARS:
        reason = reason[:REASON_CHARS - 3] + "..."
    return b"\t".join((
        batch_fingerprint.encode("ascii"),
        str(bad.index).encode("ascii"),
        escape_field(reason.encode("utf-8", "backslashreplace")),
        str(len(message)).encode("ascii"),
        hashlib.sha256(message).hexdigest().encode("ascii"),
        escape_field(message[:MESSAGE_PREFIX_BYTES]),
    )) + b"\n"


def find_rejects(payloads: Sequence[bytes], spec: FeatureSpec, *, rows: RowKind
                 ) -> Iterator[BadRow]:
    """The bad rows of a batch, in order: what train.py / score.py / outcomes.py skip under
    ``--on-bad-row skip`` (one trailing newline per message dropped first, as they do)."""
    if rows == "outcomes":
        yield from iter_outcome_rejects(payloads, spec)
        return
    with_label = rows == "training"
    if len(payloads) > SMALL_BATCH:
        from matchstream.ml.features import decode_batch

        yield from decode_batch(payloads, spec, with_label=with_label, skip_bad=True).skipped
        return
    decoder = RowDecoder(spec, with_label=with_label)
    for position, line in enumerate(strip_newlines(payloads)):
        try:
            decoder.decode(line, position)
        except BadRow as bad:
            yield bad


def reject_rows(raw: bytes, spec: FeatureSpec, *, rows: RowKind) -> bytes:
    """Every ``rejected_rows`` line of one framed batch (empty when every message is good).

    >>> from matchstream.framing import encode_frames
    >>> spec = FeatureSpec.from_dict({"id": "id", "label": "y", "columns": ["id", "y", "x"],
    ...                               "numeric": {"x": {"mean": 0, "std": 1}}})
    >>> line = reject_rows(encode_frames([b"1,0,2", b"abc,1,3"]), spec, rows="training")
    >>> position, reason, size = line.split(b"\\t")[1:4]
    >>> position, size, reason.decode()
    (b'1', b'7', "column 'id': id must be an integer that fits BIGINT (predictions.id), got 'abc'")
    """
    payloads, _ = split_frames(raw)
    bad_rows = list(find_rejects(payloads, spec, rows=rows))
    if not bad_rows:
        return b""
    digest = fingerprint(raw)
    return b"".join(format_reject(digest, bad, payloads[bad.index]) for bad in bad_rows)

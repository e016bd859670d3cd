"""What train.py hands a trainer and gets back, and how both cross the warm trainer's socket.

Standard library only: ``transforms/train.py`` imports this on its fast path, where importing
NumPy (let alone TensorFlow) would cost more than the batch.

On the wire every message is an 8-byte little-endian length and that many bytes (the framing the
engine uses on a transform's stdin). A request is a JSON header then the framed stdin bytes; a
reply is one JSON object.

>>> import io
>>> buf = io.BytesIO()
>>> write_message(buf.write, b'{"op": "train"}')
>>> read_message(io.BytesIO(buf.getvalue()).read)
b'{"op": "train"}'
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from matchstream.errors import MatchstreamError
from matchstream.ml.estimators import DEFAULT_ESTIMATOR, ESTIMATORS
from matchstream.ml.store import DEFAULT_KEEP

__all__ = ["DEFAULT_IDLE_SECONDS", "TrainReply", "TrainRequest", "TrainerError", "read_message",
           "write_message"]

# How long the warm trainer waits for a batch before it exits. Long enough that a pipeline with
# BATCH_INTERVAL in seconds keeps its trainer between batches, short enough that a stopped demo
# does not hold ~400 MB of TensorFlow for long.
DEFAULT_IDLE_SECONDS = 300.0

_LENGTH = struct.Struct("<Q")
# A request holds one batch partition's bytes; SingleStore's transforms see at most a few hundred
# MB per batch. Anything larger on this socket is garbage, not a batch.
MAX_MESSAGE_BYTES = 1 << 31


class TrainerError(MatchstreamError):
    """The warm trainer refused a batch for a reason train.py reports as its own (bad row,
    bad spec, corrupt store): the same message the in-process path would have given."""


class ProtocolError(Exception):
    """The socket closed or carried garbage: the trainer died or is not ours."""


@dataclass(frozen=True)
class TrainRequest:
    """One batch for a trainer: the framed stdin bytes and what train.py was told
    (``estimator``: its ``--model``)."""

    raw: bytes
    model_dir: str
    spec_path: str
    keep: int = DEFAULT_KEEP
    skip_bad: bool = False
    dry_run: bool = False
    estimator: str = DEFAULT_ESTIMATOR

    def header(self) -> bytes:
        data = asdict(self)
        del data["raw"]
        return json.dumps({"op": "train", **data}).encode("utf-8")

    @classmethod
    def from_header(cls, header: dict[str, Any], raw: bytes) -> TrainRequest:
        estimator = str(header.get("estimator", DEFAULT_ESTIMATOR))
        if estimator not in ESTIMATORS:
            raise ValueError(f"unknown estimator {estimator!r}")
        return cls(raw, str(header["model_dir"]), str(header["spec_path"]), int(header["keep"]),
                   bool(header["skip_bad"]), bool(header["dry_run"]), estimator)


@dataclass(frozen=True)
class TrainReply:
    """What train.py prints: ``text`` on stdout, ``log`` lines on stderr."""

    text: str
    log: tuple[str, ...] = ()
    version: int | None = None
    replayed: bool = False  # the batch was a retry of one already learned: nothing changed

    def to_json(self) -> bytes:
        return json.dumps({"ok": True, **asdict(self)}).encode("utf-8")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainReply:
        version = data.get("version")
        return cls(str(data["text"]), tuple(str(x) for x in data.get("log", ())),
                   None if version is None else int(version), bool(data.get("replayed")))


def error_json(message: str, *, refused: bool) -> bytes:
    """``refused``: bad input, report it; otherwise the trainer failed and train.py falls back
    to training in its own process."""
    return json.dumps({"ok": False, "refused": refused, "error": message}).encode("utf-8")


def write_message(write: Callable[[bytes], Any], payload: bytes) -> None:
    write(_LENGTH.pack(len(payload)))
    write(payload)


def read_message(read: Callable[[int], bytes]) -> bytes:
    header = _read_exactly(read, _LENGTH.size)
    (size,) = _LENGTH.unpack(header)
    if size > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {size} bytes announced: not a trainer")
    return _read_exactly(read, size)


def _read_exactly(read: Callable[[int], bytes], size: int) -> bytes:
    chunks = []
    left = size
    while left:
        chunk = read(min(left, 1 << 20))
        if not chunk:
            raise ProtocolError(f"connection closed with {left} of {size} bytes unread")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)

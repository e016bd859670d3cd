"""The stdin framing SingleStore uses for Kafka transforms.

Each Kafka message value reaches the transform behind an 8-byte unsigned little-endian length
(``struct.pack('<Q', n)``); nothing else (no key, offset or headers) is sent, and stdin closes after
the last frame of the batch partition. The same module writes frames (the engine, EXTRACT PIPELINE)
and reads them (the transforms), so both sides cannot drift apart.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from matchstream.errors import MatchstreamError

__all__ = ["HEADER", "FramingError", "encode_frames", "fingerprint", "iter_frame_blocks",
           "iter_frames", "split_frames"]

HEADER = struct.Struct("<Q")

# A length above this is taken as garbage on stdin rather than a message: Kafka's default
# message.max.bytes is 1 MB and brokers rarely allow more than a few hundred MB, so 1 GiB means the
# stream is not framed at all (for example a plain CSV piped in by hand).
MAX_FRAME_BYTES = 1 << 30


class FramingError(MatchstreamError):
    """stdin does not follow the 8-byte length framing.

    ``index`` is the zero-based position of the frame in the batch, ``byte_offset`` where its
    header starts in the stream.
    """

    def __init__(self, reason: str, *, index: int, byte_offset: int) -> None:
        super().__init__(f"framing error in message {index} (stdin byte {byte_offset}): {reason}")
        self.reason, self.index, self.byte_offset = reason, index, byte_offset


def encode_frames(payloads: Iterable[bytes]) -> bytes:
    """Return ``payloads`` framed into one byte string.

    >>> encode_frames([b"ab"])
    b'\\x02\\x00\\x00\\x00\\x00\\x00\\x00\\x00ab'
    """
    return b"".join(HEADER.pack(len(p)) + p for p in payloads)


def fingerprint(raw: bytes) -> str:
    """The identity of a batch: SHA-256 of its framed input, the only thing a transform sees
    that is the same on every retry (on SingleStore too). train.py records it as
    ``input_fingerprint``, rejects.py as ``batch_fingerprint``, so the two join.

    >>> fingerprint(b"")[:12]
    'e3b0c44298fc'
    """
    return hashlib.sha256(raw).hexdigest()


def _truncated_header(got: int, index: int, at: int) -> FramingError:
    return FramingError(f"stream ended inside a length header ({got} of 8 bytes)",
                        index=index, byte_offset=at)


def _too_long(size: int, index: int, at: int) -> FramingError:
    return FramingError(
        f"length header says {size} bytes, more than the {MAX_FRAME_BYTES} allowed; is stdin "
        "really framed (8-byte little-endian length before each message)?",
        index=index, byte_offset=at)


def _truncated_payload(got: int, size: int, index: int, at: int) -> FramingError:
    return FramingError(f"stream ended inside the payload ({got} of {size} bytes)",
                        index=index, byte_offset=at)


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def iter_frames(stream: BinaryIO) -> Iterator[bytes]:
    """Yield each message value read from a framed stream until it ends.

    A clean end of stream between frames ends the iteration; a stream that ends inside a header
    or a payload, or a header announcing an impossible length, raises :class:`FramingError`.

    >>> import io
    >>> list(iter_frames(io.BytesIO(encode_frames([b"a", b"", b"bc"]))))
    [b'a', b'', b'bc']
    """
    index = 0
    position = 0
    while True:
        header = _read_exactly(stream, HEADER.size)
        if not header:
            return
        if len(header) < HEADER.size:
            raise _truncated_header(len(header), index, position)
        (size,) = HEADER.unpack(header)
        if size > MAX_FRAME_BYTES:
            raise _too_long(size, index, position)
        payload = _read_exactly(stream, size)
        if len(payload) < size:
            raise _truncated_payload(len(payload), size, index, position)
        yield payload
        index += 1
        position += HEADER.size + size


# What iter_frame_blocks asks the stream for at a time: large enough that a 100,000-message batch
# takes a few dozen reads instead of two per message, small enough to hand blocks over early.
_READ_BYTES = 1 << 20


def iter_frame_blocks(stream: BinaryIO, max_messages: int) -> Iterator[tuple[int, list[bytes]]]:
    """Yield ``(index of its first message, messages)`` blocks of at most ``max_messages`` as
    soon as they have arrived, so a transform can start on the first while the rest is written.

    The same stream and the same errors as :func:`iter_frames`, read in large pieces (``read1``
    where the stream has it: what is there, without waiting for more).

    >>> import io
    >>> stream = io.BytesIO(encode_frames([b"a", b"", b"bc"]))
    >>> list(iter_frame_blocks(stream, 2))
    [(0, [b'a', b'']), (2, [b'bc'])]
    """
    read = getattr(stream, "read1", stream.read)
    buf = bytearray()
    at = 0  # start of the first unparsed frame in buf
    index = position = 0  # message index and stream offset of buf[at]
    block: list[bytes] = []
    first = 0
    eof = False
    while True:
        while len(buf) - at >= HEADER.size:
            (size,) = HEADER.unpack_from(buf, at)
            if size > MAX_FRAME_BYTES:
                raise _too_long(size, index, position)
            end = at + HEADER.size + size
            if end > len(buf):
                break
            block.append(bytes(buf[at + HEADER.size:end]))
            position += end - at
            at = end
            index += 1
            if len(block) >= max_messages:
                yield first, block
                first, block = index, []
        if eof:
            break
        del buf[:at]
        at = 0
        chunk = read(_READ_BYTES)
        if chunk:
            buf += chunk
        else:
            eof = True
    rest = len(buf) - at
    if rest and rest < HEADER.size:
        raise _truncated_header(rest, index, position)
    if rest:
        (size,) = HEADER.unpack_from(buf, at)
        raise _truncated_payload(rest - HEADER.size, size, index, position)
    if block:
        yield first, block


def split_frames(raw: bytes) -> tuple[list[bytes], list[int]]:
    """A whole framed stream already in memory: its messages, and the byte offset just after
    each one (so ``raw[:ends[k - 1]]`` is the stream of the first ``k`` messages). The errors of
    :func:`iter_frames`; several times faster than reading frame by frame from a stream.

    >>> split_frames(encode_frames([b"a", b"bc"]))
    ([b'a', b'bc'], [9, 19])
    """
    payloads: list[bytes] = []
    ends: list[int] = []
    at, total, index = 0, len(raw), 0
    unpack = HEADER.unpack_from
    while at < total:
        if total - at < HEADER.size:
            raise _truncated_header(total - at, index, at)
        (size,) = unpack(raw, at)
        if size > MAX_FRAME_BYTES:
            raise _too_long(size, index, at)
        end = at + HEADER.size + size
        if end > total:
            raise _truncated_payload(total - at - HEADER.size, size, index, at)
        payloads.append(raw[at + HEADER.size:end])
        ends.append(end)
        at = end
        index += 1
    return payloads, ends

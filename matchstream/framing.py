"""The stdin framing SingleStore uses for Kafka transforms.

Each Kafka message value reaches the transform behind an 8-byte unsigned little-endian length
(``struct.pack('<Q', n)``); nothing else (no key, offset or headers) is sent, and stdin closes after
the last frame of the batch partition. The same module writes frames (the engine, EXTRACT PIPELINE)
and reads them (the transforms), so both sides cannot drift apart.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from matchstream.errors import MatchstreamError

__all__ = ["HEADER", "FramingError", "encode_frames", "iter_frames"]

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
            raise FramingError(
                f"stream ended inside a length header ({len(header)} of 8 bytes)",
                index=index,
                byte_offset=position,
            )
        (size,) = HEADER.unpack(header)
        if size > MAX_FRAME_BYTES:
            raise FramingError(
                f"length header says {size} bytes, more than the {MAX_FRAME_BYTES} allowed; "
                "is stdin really framed (8-byte little-endian length before each message)?",
                index=index,
                byte_offset=position,
            )
        payload = _read_exactly(stream, size)
        if len(payload) < size:
            raise FramingError(
                f"stream ended inside the payload ({len(payload)} of {size} bytes)",
                index=index,
                byte_offset=position,
            )
        yield payload
        index += 1
        position += HEADER.size + size

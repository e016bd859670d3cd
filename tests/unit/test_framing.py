from __future__ import annotations

import io
import random
from collections.abc import Callable

import pytest

from matchstream.framing import (
    HEADER,
    FramingError,
    encode_frames,
    iter_frame_blocks,
    iter_frames,
    split_frames,
)


@pytest.mark.parametrize("payloads", [[], [b""], [b"a"], [b"x" * 70_000, b"", b"\x00\xff"]])
def test_round_trip(payloads: list[bytes]) -> None:
    assert list(iter_frames(io.BytesIO(encode_frames(payloads)))) == payloads


def test_header_is_unsigned_64_bit_little_endian() -> None:
    assert encode_frames([b"abc"])[:8] == (3).to_bytes(8, "little")
    assert HEADER.size == 8


def test_truncated_header_names_the_message_and_byte() -> None:
    data = encode_frames([b"ok"]) + b"\x05\x00"
    with pytest.raises(FramingError) as caught:
        list(iter_frames(io.BytesIO(data)))
    assert (caught.value.index, caught.value.byte_offset) == (1, 10)


def test_truncated_payload_is_an_error() -> None:
    with pytest.raises(FramingError) as caught:
        list(iter_frames(io.BytesIO(encode_frames([b"hello"])[:-1])))
    assert caught.value.index == 0 and "4 of 5" in caught.value.reason


def test_unframed_text_is_recognised() -> None:
    with pytest.raises(FramingError) as caught:
        list(iter_frames(io.BytesIO(b"iid,id,gender,idg,condtn\n")))
    assert "really framed" in caught.value.reason


def _outcome(read: Callable[[bytes], list[bytes]], data: bytes) -> tuple[str, object]:
    try:
        return "ok", read(data)
    except FramingError as exc:
        return "error", (str(exc), exc.index, exc.byte_offset)


def test_block_and_in_memory_readers_agree_with_iter_frames() -> None:
    """500 random streams, whole or cut anywhere: the same messages, or the same error at the
    same message and byte, from all three readers (blocks read through a tiny buffer)."""
    rng = random.Random(20261201)
    for _ in range(500):
        messages = [rng.randbytes(rng.randrange(0, 40)) for _ in range(rng.randrange(0, 25))]
        raw = encode_frames(messages)
        data = raw[:rng.choice([len(raw), rng.randrange(0, len(raw) + 1)])]
        size = rng.randrange(1, 6)
        expected = _outcome(lambda d: list(iter_frames(io.BytesIO(d))), data)
        assert _outcome(lambda d: split_frames(d)[0], data) == expected
        assert _outcome(lambda d, s=size: [m for _, block in iter_frame_blocks(
            io.BufferedReader(io.BytesIO(d), 7), s) for m in block], data) == expected


def test_blocks_carry_the_index_of_their_first_message() -> None:
    stream = io.BytesIO(encode_frames([b"%d" % i for i in range(7)]))
    assert [(first, len(b)) for first, b in iter_frame_blocks(stream, 3)] == [
        (0, 3), (3, 3), (6, 1)]

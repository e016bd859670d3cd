from __future__ import annotations

import io

import pytest

from matchstream.framing import HEADER, FramingError, encode_frames, iter_frames


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

"""The chunked no-transform path's pieces that need no broker or database: the work-file
writer (same bytes and line map as the message-by-message writer it replaced) and ChunkFeed's
hand-over (bounded, cancel, errors)."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from matchstream.ddl import ast, parse_statement
from matchstream.engine.batch import ChunkFeed, _Cancelled, stage_input
from matchstream.engine.errors import ExtractError
from matchstream.engine.extractor import Message, PartitionData
from matchstream.engine.loader import LoadSpec


def _old_writer(values: list[bytes], terminator: bytes) -> tuple[bytes, list[int]]:
    out, firsts, line = b"", [], 1
    for value in values:
        firsts.append(line)
        if not value.endswith(terminator):
            value += terminator
        out += value
        line += value.count(terminator)
    return out, firsts


@pytest.mark.parametrize("terminator", ["\n", "\r\n", "|"])
@pytest.mark.parametrize("values", [
    [b"1\ta", b"2\tb"],
    [b"1\ta\n", b"", b"2\nb\n3", b"x" * 100],
    [b"a|b", b"|", b"c\r\nd\r\n", b""],
    [],
])
def test_work_file_has_the_same_bytes_and_line_map(
    tmp_path: Path, terminator: str, values: list[bytes]
) -> None:
    stmt = parse_statement("CREATE PIPELINE p AS LOAD DATA KAFKA 'h/t' INTO TABLE t")
    assert isinstance(stmt, ast.CreatePipeline)
    spec = dataclasses.replace(LoadSpec.from_pipeline(stmt, "db"), lines_terminated_by=terminator)
    plan: Any = SimpleNamespace(transform=None, name="p", work_dir=tmp_path, spec=spec)
    data = PartitionData(0, 5, 5 + len(values),
                         [Message(5 + i, v) for i, v in enumerate(values)])
    staged = stage_input(plan, data)
    expected, firsts = _old_writer(values, terminator.encode())
    assert staged.path.read_bytes() == expected
    assert list(staged.message_first_lines) == firsts
    assert staged.line_count == expected.count(terminator.encode())
    for line in range(1, staged.line_count + 1):  # each line maps to the message holding it
        index = staged.message_of_line(data, line)
        assert index is not None and firsts[index] <= line


def _chunk(start: int, n: int) -> PartitionData:
    return PartitionData(0, start, start + n, [Message(start + i, b"v") for i in range(n)])


def test_feed_delivers_in_order_and_holds_at_most_two_chunks() -> None:
    stop = threading.Event()
    feed = ChunkFeed(0, 0, 9, _chunk(0, 3))
    assert feed.reserve(stop)  # the second slot: one chunk read ahead
    feed.put(_chunk(3, 3))
    feed.abandoned.set()  # a third reservation would wait; an abandoned feed says stop
    assert not feed.reserve(stop)
    feed.abandoned.clear()
    got = []
    chunks = feed.chunks()
    got.append(next(chunks).start)
    got.append(next(chunks).start)  # frees the first chunk's slot
    assert feed.reserve(stop)
    feed.put(_chunk(6, 3))
    feed.close()
    got += [c.start for c in chunks]
    assert got == [0, 3, 6]


def test_feed_cancel_and_error_reach_the_batch_thread() -> None:
    feed = ChunkFeed(0, 0, 6, _chunk(0, 3))
    feed.cancel()
    feed.close()  # only the first close counts
    chunks = feed.chunks()
    next(chunks)
    with pytest.raises(_Cancelled):
        next(chunks)
    error = ExtractError("broker gone", pipeline="p", topic="t", partition=0, start=0, end=6)
    feed = ChunkFeed(0, 0, 6, _chunk(0, 3))
    feed.close(error)
    chunks = feed.chunks()
    next(chunks)
    with pytest.raises(ExtractError):
        next(chunks)


def test_reserve_gives_up_on_stop() -> None:
    stop = threading.Event()
    feed = ChunkFeed(0, 0, 9, _chunk(0, 3))
    assert feed.reserve(stop)
    stop.set()
    assert not feed.reserve(stop)

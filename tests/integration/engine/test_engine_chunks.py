"""Without a transform a batch partition is read and loaded in overlapping chunks, all in one
transaction (batch.ChunkFeed). These tests use chunks of 3 messages, so one range spans several
chunks, and check that the result is exactly that of one load of the whole range."""

from __future__ import annotations

import pytest

from matchstream.engine import batch, catalog, settings
from matchstream.engine.errors import LoadError
from matchstream.engine.statements import Message

from .conftest import Env

pytestmark = pytest.mark.integration

CAT = catalog.CATALOG_SCHEMA


@pytest.fixture(autouse=True)
def staged(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Chunks of 3 messages; returns the (start, end) of every work file written."""
    monkeypatch.setattr(settings, "DEFAULT_CHUNK_MESSAGES", 3)
    written: list[tuple[int, int]] = []
    original = batch.stage_input

    def spy(plan, data, **kw):  # type: ignore[no-untyped-def]
        written.append((data.start, data.end))
        return original(plan, data, **kw)

    monkeypatch.setattr(batch, "stage_input", spy)
    return written


def _pipeline(env: Env, before_into: str = "", after: str = "") -> None:
    env.db("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))")
    env.sql(f"CREATE PIPELINE p AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' "
            f"MAX_RETRIES_PER_BATCH_PARTITION 2 {before_into} INTO TABLE t {after}")


def _ids(env: Env) -> list[int]:
    return sorted(r[0] for r in env.db("SELECT id FROM t"))


def test_a_range_of_several_chunks_loads_every_message_once(
    env: Env, staged: list[tuple[int, int]]
) -> None:
    env.produce([f"{i}\tn{i}".encode() for i in range(10)])
    _pipeline(env)
    assert env.sql("START PIPELINE p FOREGROUND") == Message("Query OK, 10 rows affected", 10)
    assert staged == [(0, 3), (3, 6), (6, 9), (9, 10)]  # four LOAD DATA, one transaction
    assert _ids(env) == list(range(10))
    assert env.cursors("p") == {0: 10}
    batches = env.db(f"SELECT BATCH_STATE, BATCH_EARLIEST_OFFSET, BATCH_LATEST_OFFSET, "
                     f"BATCH_PARTITION_MESSAGES FROM `{CAT}`.PIPELINES_BATCHES "
                     "WHERE DATABASE_NAME = %s", [env.database])
    assert batches == [("Succeeded", 0, 10, 10)]  # one batch partition, not one per chunk
    env.produce([f"{i}\tn{i}".encode() for i in range(10, 17)])
    assert env.sql("START PIPELINE p FOREGROUND") == Message("Query OK, 7 rows affected", 7)
    assert _ids(env) == list(range(17)) and env.cursors("p") == {0: 17}


@pytest.mark.parametrize("bad_index", [4, 7], ids=["2nd-chunk", "3rd-chunk"])
def test_a_bad_line_in_a_later_chunk_names_its_line_and_offset_and_commits_nothing(
    env: Env, bad_index: int
) -> None:
    values = [f"{i}\tn{i}".encode() for i in range(9)]
    values[bad_index] = b"42"
    env.produce(values)
    _pipeline(env)
    with pytest.raises(LoadError) as raised:
        env.sql("START PIPELINE p FOREGROUND")
    assert raised.value.code == 1261 and (raised.value.start, raised.value.end) == (0, 9)
    assert env.count("t") == 0  # the chunks before the bad one rolled back too
    assert env.cursors("p") == {0: 0}
    errors = env.errors("p")
    assert len(errors) == 2
    for row in errors:
        assert row["LOAD_DATA_LINE_NUMBER"] == bad_index + 1
        assert row["LOAD_DATA_LINE"] == "42"
        assert f"Row {bad_index + 1} doesn't contain data" in row["ERROR_MESSAGE"]
        assert f"offset {bad_index}" in row["ERROR_MESSAGE"]
        assert (row["BATCH_EARLIEST_OFFSET"], row["BATCH_LATEST_OFFSET"]) == (0, 9)


def test_skip_parser_errors_across_chunks(env: Env) -> None:
    values = [f"{i}\tn{i}".encode() for i in range(9)]
    values[1], values[4], values[8] = b"1", b"4\tx\ty", b"8"
    env.produce(values)
    _pipeline(env, before_into="SKIP PARSER ERRORS")
    assert env.sql("START PIPELINE p FOREGROUND") == Message("Query OK, 6 rows affected", 6)
    assert _ids(env) == [0, 2, 3, 5, 6, 7]
    warnings = env.errors("p")
    assert [(w["ERROR_TYPE"], w["ERROR_CODE"], w["LOAD_DATA_LINE_NUMBER"], w["LOAD_DATA_LINE"])
            for w in warnings] == [("Warning", 1261, 2, "1"), ("Warning", 1262, 5, "4\tx\ty"),
                                   ("Warning", 1261, 9, "8")]
    assert "Row 5 " in warnings[1]["ERROR_MESSAGE"] and "Row 9 " in warnings[2]["ERROR_MESSAGE"]
    assert env.cursors("p") == {0: 9}


def test_where_across_chunks(env: Env) -> None:
    env.produce([f"{i}\tn{i}".encode() for i in range(10)])
    _pipeline(env, after="WHERE id % 3 = 0")
    assert env.sql("START PIPELINE p FOREGROUND") == Message("Query OK, 4 rows affected", 4)
    assert _ids(env) == [0, 3, 6, 9]
    assert env.cursors("p") == {0: 10} and env.errors("p") == []
    assert not env.db("SHOW TABLES LIKE '__matchstream%'")


def test_where_with_a_bad_line_in_a_later_chunk_commits_nothing(env: Env) -> None:
    values = [f"{i}\tn{i}".encode() for i in range(8)]
    values[6] = b"x6\tn6"
    env.produce(values)
    _pipeline(env, after="WHERE id >= 0")
    with pytest.raises(LoadError):
        env.sql("START PIPELINE p FOREGROUND")
    assert env.count("t") == 0 and env.cursors("p") == {0: 0}
    assert {r["LOAD_DATA_LINE_NUMBER"] for r in env.errors("p")} == {7}


def test_ignore_lines_keeps_one_chunk(env: Env, staged: list[tuple[int, int]]) -> None:
    """IGNORE n LINES skips the start of the range only, not of every chunk."""
    env.produce([f"{i}\tn{i}".encode() for i in range(8)])
    _pipeline(env, after="IGNORE 1 LINES")
    assert env.sql("START PIPELINE p FOREGROUND") == Message("Query OK, 7 rows affected", 7)
    assert staged == [(0, 8)]
    assert _ids(env) == list(range(1, 8)) and env.cursors("p") == {0: 8}


def test_an_unchunked_range_ends_at_its_byte_cap(
    env: Env, staged: list[tuple[int, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """IGNORE n LINES keeps a range in one piece, held in memory whole: at range_max_bytes (here
    12 bytes, two of these 6-byte messages) the range ends and the rest is the next batch's.
    Each range ignores its first line, as every LOAD DATA does; nothing else is left out."""
    monkeypatch.setattr(settings, "DEFAULT_RANGE_MAX_BYTES", 12)
    env.produce([f"{i}\tn{i}".encode() for i in range(10, 16)])
    _pipeline(env, after="IGNORE 1 LINES")
    env.sql("START PIPELINE p FOREGROUND")
    assert staged == [(0, 2), (2, 4), (4, 6)]  # three ranges of two messages
    assert _ids(env) == [11, 13, 15]
    assert env.cursors("p") == {0: 6}

"""Bad input: each case ends in a clear error row or message; no committed row is lost or
duplicated (docs/engine.md, "Failures")."""

from __future__ import annotations

import pytest

from matchstream.engine import catalog
from matchstream.engine.errors import (
    LoadError,
    TransformError,
    TransformNotUsable,
    UnsupportedOption,
)
from matchstream.engine.statements import Message, ResultSet

from .conftest import EngineHandle, Env, wait_for

pytestmark = pytest.mark.integration

CAT = catalog.CATALOG_SCHEMA


def _pipeline(env: Env, extra: str = "", *, table: str = "t", before_into: str = "") -> None:
    env.sql(f"CREATE PIPELINE p AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' "
            f"MAX_RETRIES_PER_BATCH_PARTITION 2 {before_into} INTO TABLE {table} {extra}")


def _good(env: Env, ids: range) -> None:
    env.produce([f"{i}\tn{i}".encode() for i in ids])


def _commit_good_prefix(env: Env) -> None:
    env.db("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))")
    _good(env, range(10))
    _pipeline(env)
    assert env.sql("START PIPELINE p FOREGROUND") == Message("Query OK, 10 rows affected", 10)


@pytest.mark.parametrize(
    "bad, code, message",
    [
        (b"42", 1261, "Row 2 doesn't contain data for all columns"),
        (b"42\tx\textra", 1262, "Row 2 was truncated"),
        (b"", 1261, "doesn't contain data for all columns"),
        (b"\x00\xff\xfe\x01\tgarbage", 1366, "Incorrect integer value"),
    ],
    ids=["too-few-fields", "too-many-fields", "empty-message", "binary-garbage"],
)
def test_bad_line_fails_the_batch_with_one_error_row_per_attempt(
    env: Env, bad: bytes, code: int, message: str
) -> None:
    _commit_good_prefix(env)
    env.produce([b"10\tok", bad, b"12\tok"])
    with pytest.raises(LoadError) as raised:
        env.sql("START PIPELINE p FOREGROUND")
    assert raised.value.code == code and raised.value.start == 10 and raised.value.end == 13
    assert env.count("t") == 10  # the whole batch partition rolled back
    assert env.cursors("p") == {0: 10}
    errors = env.errors("p")
    assert len(errors) == 2  # MAX_RETRIES_PER_BATCH_PARTITION 2 = two attempts, two rows
    for row in errors:
        assert row["ERROR_TYPE"] == "Error" and row["ERROR_CODE"] == code
        assert message in row["ERROR_MESSAGE"] and "offset 11" in row["ERROR_MESSAGE"]
        assert row["BATCH_SOURCE_PARTITION_ID"] == "0"
        assert (row["BATCH_EARLIEST_OFFSET"], row["BATCH_LATEST_OFFSET"]) == (10, 13)
        assert row["LOAD_DATA_LINE_NUMBER"] == 2
        assert row["LOAD_DATA_LINE"] == bad.decode("utf-8", errors="backslashreplace")
        assert row["PIPELINE_NAME"] == "p"


def test_stop_on_error_puts_the_background_pipeline_in_error(
    env: Env, engine: EngineHandle
) -> None:
    _commit_good_prefix(env)
    env.produce([b"10\tok", b"11"])
    env.sql("START PIPELINE p")
    wait_for(lambda: env.state("p") == "Error", what="state Error")
    assert len(env.errors("p")) == 2
    assert env.count("t") == 10
    shown = env.sql("SHOW PIPELINES")
    assert isinstance(shown, ResultSet) and shown.rows == [("p", "Error", "False")]


def test_stop_on_error_off_skips_the_range_and_counts_it(env: Env, engine: EngineHandle) -> None:
    env.db("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))")
    env.produce([b"1\ta", b"2", b"3\tc"])
    env.sql(f"CREATE PIPELINE p AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' BATCH_INTERVAL 100 "
            "MAX_RETRIES_PER_BATCH_PARTITION 3 MAX_OFFSETS_PER_BATCH_PARTITION 1 "
            "STOP_ON_ERROR OFF INTO TABLE t")
    env.sql("START PIPELINE p")
    wait_for(lambda: env.cursors("p") == {0: 3}, what="cursor past the bad message")
    assert sorted(r[0] for r in env.db("SELECT id FROM t")) == [1, 3]
    assert env.db(f"SELECT STATE, SKIPPED_BATCH_PARTITIONS FROM `{CAT}`.PIPELINES "
                  "WHERE DATABASE_NAME = %s", [env.database]) == [("Running", 1)]
    assert len(env.errors("p")) == 3


def test_skip_parser_errors_loads_the_rest_and_warns(env: Env) -> None:
    env.db("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))")
    env.produce([b"1\ta", b"2", b"3\tc\tz", b"4\td"])
    _pipeline(env, before_into="SKIP PARSER ERRORS")
    result = env.sql("START PIPELINE p FOREGROUND")
    assert isinstance(result, Message) and result.rowcount == 2
    assert sorted(r[0] for r in env.db("SELECT id FROM t")) == [1, 4]
    warnings = env.errors("p")
    assert [(w["ERROR_TYPE"], w["ERROR_CODE"], w["LOAD_DATA_LINE_NUMBER"]) for w in warnings] == [
        ("Warning", 1261, 2), ("Warning", 1262, 3)]
    # The lines themselves, read once per batch from the work file (loader.lines_of).
    assert [w["LOAD_DATA_LINE"] for w in warnings] == ["2", "3\tc\tz"]
    assert env.cursors("p") == {0: 4}


def test_duplicate_key_fails_unless_replace_or_skip(env_factory) -> None:
    strict = env_factory()
    strict.db("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))")
    strict.produce([b"1\ta", b"1\tb"])
    _pipeline(strict)
    with pytest.raises(LoadError) as raised:
        strict.sql("START PIPELINE p FOREGROUND")
    assert raised.value.code == 1062 and strict.count("t") == 0

    replacing = env_factory()
    replacing.db("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))")
    replacing.produce([b"1\ta", b"1\tb"])
    _pipeline(replacing, before_into="REPLACE")
    replacing.sql("START PIPELINE p FOREGROUND")
    assert replacing.db("SELECT id, name FROM t") == [(1, "b")]

    skipping = env_factory()
    skipping.db("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))")
    skipping.produce([b"1\ta", b"1\tb"])
    _pipeline(skipping, before_into="SKIP DUPLICATE KEY ERRORS")
    skipping.sql("START PIPELINE p FOREGROUND")
    assert skipping.db("SELECT id, name FROM t") == [(1, "a")]
    assert [w["ERROR_CODE"] for w in skipping.errors("p")] == [1062]


def test_ten_megabyte_message_loads(env: Env) -> None:
    env.db("CREATE TABLE big (id INT PRIMARY KEY, body LONGTEXT)")
    body = b"x" * (10 * 1024 * 1024)
    env.produce([b"1\t" + body, b"2\tsmall"])
    _pipeline(env, table="big")
    assert env.sql("START PIPELINE p FOREGROUND") == Message("Query OK, 2 rows affected", 2)
    assert env.db("SELECT id, LENGTH(body) FROM big ORDER BY id") == [
        (1, len(body)), (2, 5)]


def test_transform_failure_keeps_stderr(env: Env) -> None:
    env.db("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))")
    env.produce([b"1\ta"])
    path = env.transform("fail.py", "import sys\nsys.stderr.write('model file missing\\n')\n"
                                    "sys.exit(3)\n")
    _pipeline(env, before_into=f"WITH TRANSFORM ('file://{path}', '', '')")
    with pytest.raises(TransformError) as raised:
        env.sql("START PIPELINE p FOREGROUND")
    assert "exited with status 3" in str(raised.value)
    errors = env.errors("p")
    assert len(errors) == 2
    assert errors[0]["ERROR_KIND"] == "Transform"
    assert "model file missing" in errors[0]["STD_ERROR"]
    assert env.count("t") == 0 and env.cursors("p") == {0: 0}


def test_transform_writing_garbage_fails_with_the_line(env: Env) -> None:
    env.db("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))")
    env.produce([b"1\ta"])
    path = env.transform("garbage.py", "import sys\nsys.stdout.write('not a row at all\\n')\n")
    _pipeline(env, before_into=f"WITH TRANSFORM ('file://localhost{path}', '', '')")
    with pytest.raises(LoadError) as raised:
        env.sql("START PIPELINE p FOREGROUND")
    assert raised.value.line == b"not a row at all"
    assert env.errors("p")[0]["LOAD_DATA_LINE"] == "not a row at all"


def test_transform_writing_nothing_loads_nothing_and_moves_on(env: Env) -> None:
    env.db("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))")
    env.produce([b"1\ta", b"2\tb"])
    env.transform("silent.py", "import sys\nsys.stdin.buffer.read()\n")
    _pipeline(env, before_into=f"WITH TRANSFORM ('file://{env.sql_dir}/silent.py', '', '')")
    assert env.sql("START PIPELINE p FOREGROUND") == Message("Query OK, 0 rows affected", 0)
    assert env.cursors("p") == {0: 2}


def test_hanging_transform_is_killed_after_the_timeout(env: Env) -> None:
    env.config = env.config.with_(transform_timeout_s=1.0)
    env.db("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))")
    env.produce([b"1\ta"])
    path = env.transform("hang.py", "import time\ntime.sleep(600)\n")
    _pipeline(env, before_into=f"WITH TRANSFORM ('file://{path}', '', '')")
    with pytest.raises(TransformError) as raised:
        env.sql("START PIPELINE p FOREGROUND")
    assert "did not finish within 1 s" in str(raised.value)
    assert env.count("t") == 0


def test_identity_transform_gets_framed_stdin_and_arguments(env: Env) -> None:
    env.db("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))")
    env.produce([b"1\ta", b"2\tb"])
    env.transform("ident.py", (
        "import struct, sys\n"
        "suffix = sys.argv[1] + sys.argv[2]\n"
        "inp, out = sys.stdin.buffer, sys.stdout.buffer\n"
        "while True:\n"
        "    hdr = inp.read(8)\n"
        "    if not hdr:\n"
        "        break\n"
        "    (n,) = struct.unpack('<Q', hdr)\n"
        "    out.write(inp.read(n) + suffix.encode() + b'\\n')\n"))
    _pipeline(env,
              before_into=f"WITH TRANSFORM ('file://{env.sql_dir}/ident.py', '', '-x -y')")
    env.sql("START PIPELINE p FOREGROUND")
    assert env.db("SELECT id, name FROM t ORDER BY id") == [(1, "a-x-y"), (2, "b-x-y")]


@pytest.mark.parametrize("mode", ["missing", "not-executable"])
def test_unusable_transform_is_rejected_at_create(env: Env, mode: str) -> None:
    env.db("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))")
    path = env.sql_dir / "tr.py"
    if mode == "not-executable":
        path.write_text("print('hi')\n")
    with pytest.raises(TransformNotUsable):
        _pipeline(env, before_into=f"WITH TRANSFORM ('file://{path}', '', '')")
    assert env.sql("SHOW PIPELINES") == ResultSet(
        (f"Pipelines_in_{env.database}", "State", "Scheduled"), [])


def test_cursor_beyond_the_end_says_how_to_recover(env: Env, engine: EngineHandle) -> None:
    env.db("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))")
    _good(env, range(5))
    _pipeline(env)
    env.sql("""ALTER PIPELINE p SET OFFSETS '{"0": 500}'""")
    env.sql("START PIPELINE p")
    wait_for(lambda: env.state("p") == "Error", what="state Error")
    (error,) = env.errors("p")
    assert "SET OFFSETS EARLIEST" in error["ERROR_MESSAGE"] and error["ERROR_KIND"] == "Extract"
    env.sql("ALTER PIPELINE p SET OFFSETS EARLIEST")
    env.sql("START PIPELINE p")
    wait_for(lambda: env.count("t") == 5, what="reload after SET OFFSETS EARLIEST")


def test_unsupported_clause_is_rejected_not_ignored(env: Env) -> None:
    # WHERE used to be the example here; it is supported now (test_engine_where.py).
    env.db("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))")
    with pytest.raises(UnsupportedOption) as raised:
        _pipeline(env, extra="TRAILING NULLCOLS")
    assert "not supported by the local engine" in str(raised.value)
    assert raised.value.clause == "TRAILING NULLCOLS"
    assert env.sql("SHOW PIPELINES").rows == []  # type: ignore[union-attr]

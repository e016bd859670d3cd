"""``[WHERE expr]``: rows are loaded through a staging table in the batch's transaction and only
those satisfying the condition reach the table (docs/engine.md, "WHERE"). The error handling
clauses keep their meaning, with and without WHERE."""

from __future__ import annotations

import pytest

from matchstream.engine.errors import EngineError, LoadError, UnsupportedOption
from matchstream.engine.statements import Message, ResultSet

from .conftest import EngineHandle, Env, wait_for

pytestmark = pytest.mark.integration

TABLE = "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))"


def _pipeline(env: Env, extra: str = "", *, before_into: str = "") -> None:
    env.sql(f"CREATE PIPELINE p AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' "
            f"MAX_RETRIES_PER_BATCH_PARTITION 2 {before_into} INTO TABLE t {extra}")


def _rows(env: Env) -> list[tuple[object, ...]]:
    return [tuple(r) for r in env.db("SELECT id, name FROM t ORDER BY id")]


def _no_staging_table_left(env: Env) -> bool:
    return not env.db("SHOW TABLES LIKE '__matchstream%'")


def test_where_filters_rows_without_a_transform(env: Env) -> None:
    env.db(TABLE)
    env.produce([f"{i}\tn{i}".encode() for i in range(1, 7)])
    _pipeline(env, "WHERE id % 2 = 0")  # a '%' in the condition is SQL, not a placeholder
    assert env.sql("START PIPELINE p FOREGROUND") == Message("Query OK, 3 rows affected", 3)
    assert _rows(env) == [(2, "n2"), (4, "n4"), (6, "n6")]
    assert env.cursors("p") == {0: 6}  # the filtered messages are consumed too
    assert env.errors("p") == [] and _no_staging_table_left(env)


def test_where_filters_the_output_of_a_transform(env: Env) -> None:
    env.db(TABLE)
    env.produce([b"1,keep", b"2,drop", b"3,keep"])
    env.transform("csv2tsv.py", (
        "import struct, sys\n"
        "inp, out = sys.stdin.buffer, sys.stdout.buffer\n"
        "while (hdr := inp.read(8)):\n"
        "    (n,) = struct.unpack('<Q', hdr)\n"
        "    out.write(inp.read(n).replace(b',', b'\\t') + b'\\n')\n"))
    _pipeline(env, "WHERE t.name <> 'drop'",  # qualified with the table's own name
              before_into=f"WITH TRANSFORM ('file://{env.sql_dir}/csv2tsv.py', '', '')")
    assert env.sql("START PIPELINE p FOREGROUND") == Message("Query OK, 2 rows affected", 2)
    assert _rows(env) == [(1, "keep"), (3, "keep")]
    assert env.cursors("p") == {0: 3}


def test_where_sees_the_columns_computed_by_set(env: Env) -> None:
    env.db("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20), len INT)")
    env.produce([b"1\tab", b"2\tabcd", b"3\tabcdef"])
    _pipeline(env, "(id, @raw) SET name = UPPER(@raw), len = CHAR_LENGTH(@raw) WHERE len > 3")
    env.sql("START PIPELINE p FOREGROUND")
    assert env.db("SELECT id, name, len FROM t ORDER BY id") == [(2, "ABCD", 4), (3, "ABCDEF", 6)]


@pytest.mark.parametrize("where", ["", " WHERE id > 1"])
def test_a_percent_sign_in_set_is_sql_not_a_placeholder(env: Env, where: str) -> None:
    env.db("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))")
    env.produce([b"1\t2024-03-05", b"2\t2025-12-31"])
    _pipeline(env, "(id, @day) SET name = DATE_FORMAT(@day, '%Y/%m')" + where)
    env.sql("START PIPELINE p FOREGROUND")
    expected = [(1, "2024/03"), (2, "2025/12")][1 if where else 0:]
    assert env.db("SELECT id, name FROM t ORDER BY id") == expected


def test_where_with_defaults_auto_increment_and_generated_columns(env: Env) -> None:
    env.db("CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20) NOT NULL, "
           "kind VARCHAR(5) DEFAULT 'std', twice INT AS (CHAR_LENGTH(name) * 2) PERSISTENT, "
           "CHECK (name <> 'never'))")
    env.produce([b"alpha", b"skip", b"beta"])
    _pipeline(env, "(name) WHERE twice > 8")  # the generated column as the target computes it
    env.sql("START PIPELINE p FOREGROUND")
    assert env.db("SELECT id, name, kind, twice FROM t ORDER BY id") == [
        (1, "alpha", "std", 10)]
    env.produce([b"gamma", b"delta"])
    env.sql("START PIPELINE p FOREGROUND")
    assert [r[0] for r in env.db("SELECT name FROM t ORDER BY id")] == ["alpha", "gamma", "delta"]
    assert env.db("SELECT MAX(id) FROM t") == [(3,)]  # AUTO_INCREMENT still from the target


def test_where_with_replace_replaces_only_rows_that_pass(env: Env) -> None:
    env.db(TABLE)
    env.db("INSERT INTO t VALUES (1, 'old1'), (2, 'old2')")
    env.produce([b"1\tnew1", b"2\tskip", b"3\tfirst", b"3\tsecond", b"3\tskip"])
    _pipeline(env, "WHERE name <> 'skip'", before_into="REPLACE")
    env.sql("START PIPELINE p FOREGROUND")
    # In input order, as LOAD DATA REPLACE: the last passing row for a key wins.
    assert _rows(env) == [(1, "new1"), (2, "old2"), (3, "second")]
    assert env.errors("p") == []


def test_where_duplicate_key_fails_the_batch_and_commits_nothing(env: Env) -> None:
    env.db(TABLE)
    env.produce([b"1\ta", b"2\tb"])
    _pipeline(env, "WHERE name <> 'skip'")
    env.sql("START PIPELINE p FOREGROUND")
    # A duplicate that WHERE filters out is not an error...
    env.produce([b"1\tskip", b"3\tc"])
    assert env.sql("START PIPELINE p FOREGROUND") == Message("Query OK, 1 rows affected", 1)
    assert env.cursors("p") == {0: 4}
    # ... one that passes fails the batch partition like it does without WHERE.
    env.produce([b"4\td", b"2\tdup", b"5\te"])
    with pytest.raises(LoadError) as raised:
        env.sql("START PIPELINE p FOREGROUND")
    assert raised.value.code == 1062 and "Duplicate entry '2'" in str(raised.value)
    assert (raised.value.start, raised.value.end) == (4, 7)
    assert _rows(env) == [(1, "a"), (2, "b"), (3, "c")]  # nothing of 4..7 committed
    assert env.cursors("p") == {0: 4}
    errors = env.errors("p")
    assert len(errors) == 2  # one per attempt (MAX_RETRIES_PER_BATCH_PARTITION 2)
    for row in errors:
        assert row["ERROR_TYPE"] == "Error" and row["ERROR_CODE"] == 1062
        assert (row["BATCH_EARLIEST_OFFSET"], row["BATCH_LATEST_OFFSET"]) == (4, 7)
    assert _no_staging_table_left(env)


def test_where_skip_duplicate_key_errors_skips_and_warns(env: Env) -> None:
    env.db(TABLE)
    env.db("INSERT INTO t VALUES (1, 'old')")
    env.produce([b"1\tdup", b"2\tfirst", b"2\tsecond", b"3\tskip", b"3\tthird"])
    _pipeline(env, "WHERE name <> 'skip'", before_into="SKIP DUPLICATE KEY ERRORS")
    assert env.sql("START PIPELINE p FOREGROUND") == Message("Query OK, 2 rows affected", 2)
    assert _rows(env) == [(1, "old"), (2, "first"), (3, "third")]
    warnings = env.errors("p")
    assert [(w["ERROR_TYPE"], w["ERROR_CODE"]) for w in warnings] == [
        ("Warning", 1062), ("Warning", 1062)]
    assert env.cursors("p") == {0: 5}


def test_where_keeps_per_line_errors_and_skips(env_factory) -> None:
    strict = env_factory()
    strict.db(TABLE)
    strict.produce([b"10\tok", b"42", b"12\tok"])
    _pipeline(strict, "WHERE id > 0")
    with pytest.raises(LoadError) as raised:
        strict.sql("START PIPELINE p FOREGROUND")
    assert raised.value.code == 1261 and raised.value.line_number == 2
    assert "offset 1" in str(raised.value)
    (first, _) = strict.errors("p")
    assert first["LOAD_DATA_LINE"] == "42" and first["LOAD_DATA_LINE_NUMBER"] == 2
    assert strict.count("t") == 0 and strict.cursors("p") == {0: 0}

    skipping = env_factory()
    skipping.db(TABLE)
    skipping.produce([b"1\ta", b"2", b"3\tc\tz", b"4\td", b"5\tskip"])
    _pipeline(skipping, "WHERE name <> 'skip'", before_into="SKIP PARSER ERRORS")
    assert skipping.sql("START PIPELINE p FOREGROUND") == Message("Query OK, 2 rows affected", 2)
    assert _rows(skipping) == [(1, "a"), (4, "d")]
    warnings = skipping.errors("p")
    assert [(w["ERROR_CODE"], w["LOAD_DATA_LINE_NUMBER"], w["LOAD_DATA_LINE"])
            for w in warnings] == [(1261, 2, "2"), (1262, 3, "3\tc\tz")]

    constraint = env_factory()
    constraint.db(TABLE)
    constraint.produce([b"1\ta", b"x\tb", b"3\tc"])
    _pipeline(constraint, "WHERE id <> 3", before_into="SKIP CONSTRAINT ERRORS")
    constraint.sql("START PIPELINE p FOREGROUND")
    assert _rows(constraint) == [(1, "a")]
    assert [(w["ERROR_CODE"], w["LOAD_DATA_LINE_NUMBER"]) for w in constraint.errors("p")] == [
        (1366, 2)]


def test_where_in_a_background_pipeline(env: Env, engine: EngineHandle) -> None:
    env.db(TABLE)
    env.produce([f"{i}\tn{i}".encode() for i in range(20)])
    _pipeline(env, "WHERE id >= 15")
    env.sql("START PIPELINE p")
    wait_for(lambda: env.cursors("p") == {0: 20}, what="cursor at the end")
    assert [r[0] for r in _rows(env)] == [15, 16, 17, 18, 19]


def test_test_pipeline_applies_where(env: Env) -> None:
    env.db(TABLE)
    env.produce([b"1\ta", b"2\tskip", b"3\tc"])
    _pipeline(env, "WHERE name <> 'skip'")
    result = env.sql("TEST PIPELINE p")
    assert isinstance(result, ResultSet) and result.columns == ("id", "name")
    assert sorted(result.rows) == [(1, "a"), (3, "c")]
    assert env.count("t") == 0 and env.cursors("p").get(0, 0) == 0  # nothing written


@pytest.mark.parametrize(
    "where, expected",
    [
        ("WHERE @v <> ''", "@v in WHERE (column 1 of the condition"),
        ("WHERE nosuch > 1", "Unknown column 'nosuch'"),
        ("WHERE id >", "WHERE 'id >' does not work on table 't'"),
    ],
    ids=["load-data-variable", "unknown-column", "syntax-error"],
)
def test_where_is_checked_at_create(env: Env, where: str, expected: str) -> None:
    env.db(TABLE)
    with pytest.raises(EngineError) as raised:
        _pipeline(env, f"(id, @v) SET name = @v {where}")
    assert expected in str(raised.value)
    if "@v" in where:
        assert isinstance(raised.value, UnsupportedOption)
        assert "not supported by the local engine" in str(raised.value)
    assert env.sql("SHOW PIPELINES").rows == []  # type: ignore[union-attr]


PARITY_INPUT = [b"1\tdup", b"2\tok", b"3", b"x\tbad", b"6\tfirst", b"6\tagain", b"7\tok\textra"]
CHECK_FAILURE = b"5\tnever"
HANDLINGS = [
    "", "REPLACE", "IGNORE", "IGNORE REPLACE", "SKIP PARSER ERRORS",
    "SKIP DUPLICATE KEY ERRORS", "SKIP CONSTRAINT ERRORS", "SKIP ALL ERRORS",
    "SKIP ALL ERRORS REPLACE",
]


def _outcome(env: Env, handling: str, where: str, messages: list[bytes]) -> object:
    env.db("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20), CHECK (name <> 'never'))")
    env.db("INSERT INTO t VALUES (1, 'old')")
    env.produce(messages)
    _pipeline(env, where, before_into=handling)
    try:
        env.sql("START PIPELINE p FOREGROUND")
    except LoadError as exc:
        return ("failed", exc.code, exc.line_number, _rows(env), env.cursors("p"))
    warnings = sorted((w["ERROR_TYPE"], w["ERROR_CODE"], w["LOAD_DATA_LINE_NUMBER"] or 0,
                       w["LOAD_DATA_LINE"] or "") for w in env.errors("p"))
    return ("loaded", _rows(env), warnings, env.cursors("p"))


@pytest.mark.parametrize("handling", HANDLINGS)
def test_where_true_behaves_exactly_like_no_where(env_factory, handling: str) -> None:
    """Duplicates (with the table and within the batch), a bad value and wrong field counts in
    one batch: a WHERE that keeps every row gives the same rows, errors (code and line),
    warnings (code, line number, line) and cursor as no WHERE at all."""
    direct = _outcome(env_factory(), handling, "", PARITY_INPUT)
    staged = _outcome(env_factory(), handling, "WHERE 1 = 1", PARITY_INPUT)
    assert staged == direct


@pytest.mark.parametrize("handling", HANDLINGS)
def test_where_true_and_a_check_constraint_failure(env_factory, handling: str) -> None:
    """A CHECK failure surfaces in the final INSERT with WHERE (the staging table has no
    CHECKs) and gives the same outcome, except one MariaDB quirk of the direct load: under
    IGNORE, after a row skipped for a CHECK, LOAD DATA numbers the later rows one too low; the
    staged load names the right line."""
    messages = [*PARITY_INPUT[:4], CHECK_FAILURE, *PARITY_INPUT[4:]]
    direct = _outcome(env_factory(), handling, "", messages)
    staged = _outcome(env_factory(), handling, "WHERE 1 = 1", messages)
    if handling != "IGNORE":
        assert staged == direct
        return
    shifted = ("Warning", 1262, 7, "6\tagain")
    right = ("Warning", 1262, 8, "7\tok\textra")
    assert isinstance(direct, tuple) and isinstance(staged, tuple)
    assert shifted in direct[2] and right in staged[2]  # type: ignore[operator]
    assert [w for w in direct[2] if w != shifted] == [  # type: ignore[union-attr]
        w for w in staged[2] if w != right]  # type: ignore[union-attr]
    assert (direct[1], direct[3]) == (staged[1], staged[3])


def test_temporary_table_ddl_does_not_commit_the_batch_transaction(env: Env) -> None:
    """The property the staging table relies on (MariaDB 10.11): CREATE/DROP TEMPORARY TABLE
    inside a transaction leave it open, so a rollback still removes what came before them."""
    env.db(TABLE)
    env.sql("SHOW PIPELINES")  # creates the catalog the fixture's teardown cleans
    conn = env.conn
    conn.begin()
    with conn.cursor() as cursor:
        cursor.execute("INSERT INTO t VALUES (1, 'a')")
        cursor.execute("CREATE TEMPORARY TABLE stage_probe (a INT) ENGINE=InnoDB")
        cursor.execute("INSERT INTO t VALUES (2, 'b')")
        cursor.execute("DROP TEMPORARY TABLE stage_probe")
        cursor.execute("SELECT @@in_transaction")
        assert cursor.fetchone() == (1,)
    conn.rollback()
    assert env.count("t") == 0

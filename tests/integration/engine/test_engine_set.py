"""``SET`` as SingleStore has it, on the real broker and MariaDB: the pipeline built-ins give each
row its message's values, ``:>`` casts run, and what SingleStore refuses is refused at CREATE
(docs/pipeline-grammar.md, "SET")."""

from __future__ import annotations

import pytest

from matchstream.ddl import DdlSyntaxError, UnsupportedByLocalEngine
from matchstream.engine.errors import EngineError
from matchstream.engine.statements import Message, ResultSet

from .conftest import IDENTITY, Env

pytestmark = pytest.mark.integration

TABLE = ("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20), o BIGINT, p INT, tp VARCHAR(80), "
         "ts BIGINT, b BIGINT)")
PROPS = ("o = get_kafka_pipeline_prop('prop_offset'), "
         "p = get_kafka_pipeline_prop('prop_partition'), "
         "tp = get_kafka_pipeline_prop('prop_topicname'), "
         "ts = get_kafka_pipeline_prop('prop_timestamp') :> BIGINT, b = pipeline_batch_id()")


def _rows(env: Env) -> list[tuple[object, ...]]:
    return [tuple(r) for r in env.db("SELECT id, v, o, p, tp, ts, b FROM t ORDER BY id")]


def test_kafka_properties_are_each_rows_own_message(env_factory) -> None:
    env = env_factory(partitions=2)
    env.db(TABLE)
    env.produce([b"1,a", b"2,b", b"3,c"], partition=0)
    env.produce([b"10,x", b"11,y\n12,z"], partition=1)  # one message, two rows
    env.sql(f"CREATE PIPELINE p AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' INTO TABLE t "
            f"FIELDS TERMINATED BY ',' (id, @v) SET v = UPPER(@v), {PROPS}")
    assert env.sql("START PIPELINE p FOREGROUND") == Message("Query OK, 6 rows affected", 6)
    rows = _rows(env)
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in rows] == [
        (1, "A", 0, 0, env.topic), (2, "B", 1, 0, env.topic), (3, "C", 2, 0, env.topic),
        (10, "X", 0, 1, env.topic), (11, "Y", 1, 1, env.topic), (12, "Z", 1, 1, env.topic)]
    batches = {int(r[0]): int(r[1]) for r in env.db(
        "SELECT BATCH_SOURCE_PARTITION_ID, BATCH_ID FROM matchstream_catalog.PIPELINES_BATCHES "
        "WHERE DATABASE_NAME = %s AND PIPELINE_NAME = 'p' AND BATCH_STATE = 'Succeeded'",
        [env.database])}
    assert all(r[6] == batches[int(r[3])] for r in rows)
    assert all(isinstance(r[5], int) and r[5] > 1_600_000_000_000 for r in rows)  # Kafka's ms


def test_offsets_survive_a_reload_after_skipped_lines(env: Env) -> None:
    env.db("CREATE TABLE t (id INT PRIMARY KEY, o BIGINT)")
    env.produce([b"1", b"oops", b"3"])
    env.sql(f"CREATE PIPELINE p AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' "
            "SKIP CONSTRAINT ERRORS INTO TABLE t (id) "
            "SET o = get_kafka_pipeline_prop('prop_offset')")
    env.sql("START PIPELINE p FOREGROUND")
    assert env.db("SELECT id, o FROM t ORDER BY id") == [(1, 0), (3, 2)]
    warnings = [e for e in env.errors("p") if e["ERROR_TYPE"] == "Warning"]
    assert [e["LOAD_DATA_LINE"] for e in warnings] == ["oops"]  # the message, no offset field


def test_offsets_without_a_column_list_and_with_where(env: Env) -> None:
    env.db("CREATE TABLE t (id INT PRIMARY KEY, o BIGINT)")
    env.produce([b"5\t\\N", b"6\t\\N", b"7\t\\N"])
    env.sql(f"CREATE PIPELINE p AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' INTO TABLE t "
            "SET o = get_kafka_pipeline_prop('prop_offset') WHERE id <> 6")
    env.sql("START PIPELINE p FOREGROUND")
    assert env.db("SELECT id, o FROM t ORDER BY id") == [(5, 0), (7, 2)]


def test_test_pipeline_shows_the_properties(env: Env) -> None:
    env.db("CREATE TABLE t (id INT PRIMARY KEY, o BIGINT, p INT)")
    env.produce([b"1", b"2"])
    env.sql(f"CREATE PIPELINE p AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' INTO TABLE t (id) "
            "SET o = get_kafka_pipeline_prop('prop_offset'), "
            "p = get_kafka_pipeline_prop('prop_partition') :> INT")
    result = env.sql("TEST PIPELINE p")
    assert isinstance(result, ResultSet)
    assert result.rows == [(1, 0, 0), (2, 1, 0)]
    assert env.count("t") == 0


def test_partition_properties_after_a_transform(env: Env) -> None:
    env.db("CREATE TABLE t (id INT PRIMARY KEY, p INT, tp VARCHAR(80))")
    env.produce([b"1", b"2"])
    env.transform("identity.py", IDENTITY)
    env.sql(f"CREATE PIPELINE p AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' "
            f"WITH TRANSFORM ('file://{env.sql_dir}/identity.py', '', '') INTO TABLE t (id) "
            "SET p = get_kafka_pipeline_prop('prop_partition'), "
            "tp = get_kafka_pipeline_prop('prop_topicname')")
    env.sql("START PIPELINE p FOREGROUND")
    assert env.db("SELECT id, p, tp FROM t ORDER BY id") == [(1, 0, env.topic), (2, 0, env.topic)]


def test_casts_run_as_mariadb_casts(env: Env) -> None:
    env.db("CREATE TABLE t (id INT PRIMARY KEY, d DECIMAL(6,2), s VARCHAR(10), n BIGINT)")
    env.produce([b"1\t3.14159\t12345", b"2\t-2.5\t7"])
    env.sql(f"CREATE PIPELINE p AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' INTO TABLE t "
            "(id, @d, @s) SET d = @d :> DECIMAL(6,2), s = @s !:> CHAR(3), "
            "n = -@s :> BIGINT * 2")
    env.sql("START PIPELINE p FOREGROUND")
    assert [(i, str(d), s, n) for i, d, s, n in env.db("SELECT id, d, s, n FROM t ORDER BY id")] \
        == [(1, "3.14", "123", -24690), (2, "-2.50", "7", -14)]


def test_a_column_on_the_right_is_refused_at_create_with_its_position(env: Env) -> None:
    env.db(TABLE)
    with pytest.raises(DdlSyntaxError) as info:
        env.sql(f"CREATE PIPELINE p AS LOAD DATA KAFKA '{env.kafka}/{env.topic}'\n"
                "INTO TABLE t (id, @v)\nSET v = @v, o = id + 1")
    assert (info.value.line, info.value.col) == (3, 17)
    assert "column names may only be used on the left side of SET" in info.value.reason
    assert env.db("SELECT COUNT(*) FROM matchstream_catalog.pipeline_registry "
                  "WHERE DATABASE_NAME = %s", [env.database]) == [(0,)]


def test_per_message_properties_after_a_transform_are_refused(env: Env) -> None:
    env.db(TABLE)
    env.transform("identity.py", IDENTITY)
    uri = f"file://{env.sql_dir}/identity.py"
    with pytest.raises(UnsupportedByLocalEngine, match="prop_offset"):
        env.sql(f"CREATE PIPELINE p AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' "
                f"WITH TRANSFORM ('{uri}', '', '') INTO TABLE t (id) "
                "SET o = get_kafka_pipeline_prop('prop_offset')")
    env.sql(f"CREATE PIPELINE p AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' INTO TABLE t (id) "
            "SET o = get_kafka_pipeline_prop('prop_offset')")
    with pytest.raises(EngineError, match="prop_offset.*WITH TRANSFORM"):
        env.sql(f"ALTER PIPELINE p SET TRANSFORM ('{uri}', '', '')")


@pytest.mark.parametrize(("assignment", "fragment"), [
    ("nope = @v", "Unknown column 'nope'"),
    ("v = CONCAT_WS(@v)", "Incorrect parameter count"),
])
def test_set_is_compiled_against_the_table_at_create(env: Env, assignment: str,
                                                     fragment: str) -> None:
    env.db(TABLE)
    with pytest.raises(EngineError, match=fragment) as info:
        env.sql(f"CREATE PIPELINE p AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' INTO TABLE t "
                f"(id, @v) SET {assignment}")
    assert "does not work on table 't'" in str(info.value)


def test_a_modulo_in_set_passes_create_and_loads(env: Env) -> None:
    env.db("CREATE TABLE t (id INT PRIMARY KEY, o BIGINT)")
    env.produce([b"17"])
    env.sql(f"CREATE PIPELINE p AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' INTO TABLE t "
            "(@v) SET id = @v, o = @v % 10")
    env.sql("START PIPELINE p FOREGROUND")
    assert env.db("SELECT id, o FROM t") == [(17, 7)]

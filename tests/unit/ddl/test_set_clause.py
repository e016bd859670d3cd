"""SET expressions: SingleStore's rules at parse time, MariaDB's SQL at load time (pure logic;
the real-stack behaviour is in tests/integration/engine/test_engine_set.py)."""

from __future__ import annotations

import dataclasses

import pytest

from matchstream.ddl import DdlSyntaxError, UnsupportedByLocalEngine, ast, parse_statement
from matchstream.ddl.set_clause import translate
from matchstream.engine.errors import UnsupportedOption
from matchstream.engine.extractor import Message
from matchstream.engine.loader import LoadSpec, line_starts

KAFKA = "CREATE PIPELINE p AS LOAD DATA KAFKA 'h/t' "


def _create(sql: str) -> ast.CreatePipeline:
    node = parse_statement(KAFKA + sql)
    assert isinstance(node, ast.CreatePipeline)
    return node


@pytest.mark.parametrize(("given", "expected"), [
    ("@v :> INT", "CAST(@v AS SIGNED)"),
    ("@v :> BIGINT UNSIGNED", "CAST(@v AS UNSIGNED)"),
    ("@v !:> DECIMAL(10, 2)", "CAST(@v AS DECIMAL(10, 2))"),
    ("@v !:> CHAR(3)", "LEFT(CAST(@v AS CHAR), 3)"),  # "always succeeds": no truncation warning
    ("@v :> VARCHAR(5)", "CAST(@v AS CHAR(5))"),
    ("@v :> TEXT", "CAST(@v AS CHAR)"),
    ("@v :> DATETIME(6)", "CAST(@v AS DATETIME(6))"),
    ("@v :> TIMESTAMP", "CAST(@v AS DATETIME)"),
    ("@v :> DOUBLE * 2", "CAST(@v AS DOUBLE) * 2"),
    ("-@v :> INT", "-CAST(@v AS SIGNED)"),  # :> binds tighter than unary minus (sqlglot agrees)
    ("@a + @b :> INT", "@a + CAST(@b AS SIGNED)"),
    ("(@a + @b) :> INT", "CAST((@a + @b) AS SIGNED)"),
    ("CONCAT(@a, ':>') :> CHAR(3) :> BINARY(3)",
     "CAST(CAST(CONCAT(@a, ':>') AS CHAR(3)) AS BINARY(3))"),
    ("IF(@a :> INT > 1, 'x', 'y')", "IF(CAST(@a AS SIGNED) > 1, 'x', 'y')"),
    ("pipeline_batch_id()", "@matchstream_pipeline_batch_id"),
    ("PIPELINE_BATCH_ID( )", "@matchstream_pipeline_batch_id"),
    ("'pipeline_batch_id()'", "'pipeline_batch_id()'"),
    ("get_kafka_pipeline_prop(\"prop_partition\") :> INT",
     "CAST(@`__matchstream_prop_partition` AS SIGNED)"),
    ("DATE_FORMAT(@d, '%Y')", "DATE_FORMAT(@d, '%Y')"),
])
def test_translate(given: str, expected: str) -> None:
    assert translate(given).sql == expected


def test_translate_reports_what_the_expression_reads() -> None:
    t = translate("CONCAT(get_kafka_pipeline_prop('prop_offset'), pipeline_batch_id(), "
                  "get_kafka_pipeline_prop('prop_topicname'))")
    assert t.batch_id
    assert t.properties == {"prop_offset", "prop_topicname"}


def test_accepted_expressions_keep_their_text() -> None:
    node = _create("INTO TABLE t (a, @b, @c) SET x = @b :> INT, "
                   "y = DATE_ADD(NOW(6), INTERVAL 1 DAY), "
                   "z = CASE WHEN @c IS NULL THEN CURRENT_TIMESTAMP ELSE @c END, "
                   "w = CAST(@b AS CHAR(3)), v = CONVERT(@b, DECIMAL(5,2))")
    assert [a.expression for a in node.set_assignments] == [
        "@b :> INT", "DATE_ADD(NOW(6), INTERVAL 1 DAY)",
        "CASE WHEN @c IS NULL THEN CURRENT_TIMESTAMP ELSE @c END", "CAST(@b AS CHAR(3))",
        "CONVERT(@b, DECIMAL(5,2))"]


def test_a_column_on_the_right_is_refused_at_its_position() -> None:
    with pytest.raises(DdlSyntaxError) as info:
        parse_statement("CREATE PIPELINE p AS LOAD DATA KAFKA 'h/t'\nINTO TABLE t (a, @b)\n"
                        "SET c = @b,\n    d = a + 1", source="p.sql")
    error = info.value
    assert (error.source, error.line, error.col, error.snippet) == ("p.sql", 4, 9, "a")
    assert "column names may only be used on the left side of SET expressions" in error.reason


def test_per_batch_partition_properties_are_fine_with_a_transform() -> None:
    node = _create("WITH TRANSFORM ('file:///x.py', '', '') INTO TABLE t (a) "
                   "SET p = get_kafka_pipeline_prop('prop_partition'), "
                   "n = get_kafka_pipeline_prop('prop_topicname'), b = pipeline_batch_id()")
    spec = LoadSpec.from_pipeline(node, "db")
    assert spec.partition_properties == ("prop_partition", "prop_topicname")
    assert spec.message_properties == ()
    assert spec.uses_batch_id


def test_a_transform_added_by_alter_is_refused_with_per_message_properties() -> None:
    node = _create("INTO TABLE t (a) SET o = get_kafka_pipeline_prop('prop_offset')")
    LoadSpec.from_pipeline(node, "db")
    altered = ast.SetTransform(ast.TransformSpec("file:///x.py")).apply(node)
    with pytest.raises(UnsupportedOption, match="prop_offset.*WITH TRANSFORM"):
        LoadSpec.from_pipeline(altered, "db")


@pytest.mark.parametrize("clause", ["LINES STARTING BY '>'", "FIELDS TERMINATED BY ''"])
def test_per_message_properties_need_a_plain_first_field(clause: str) -> None:
    node = _create(f"INTO TABLE t {clause} (a) SET o = get_kafka_pipeline_prop('prop_offset')")
    with pytest.raises(UnsupportedOption, match="prop_offset"):
        LoadSpec.from_pipeline(node, "db")


def test_unsupported_is_its_own_class() -> None:
    with pytest.raises(UnsupportedByLocalEngine):
        _create("INTO TABLE t (a, @b) SET c = JSON_EXTRACT_STRING(@b, 'k')")


def test_load_data_reads_the_properties_first() -> None:
    spec = LoadSpec.from_pipeline(_create(
        "INTO TABLE t FIELDS TERMINATED BY ',' (a, @b) SET c = @b :> INT, "
        "o = get_kafka_pipeline_prop('prop_offset'), "
        "ts = get_kafka_pipeline_prop('prop_timestamp'), "
        "p = get_kafka_pipeline_prop('prop_partition')"), "db")
    sql, _ = spec.statement()
    assert sql.endswith(
        "(@`__matchstream_prop_offset`, @`__matchstream_prop_timestamp`, `a`, @`b`) SET "
        "`c` = CAST(@b AS SIGNED), `o` = @`__matchstream_prop_offset`, "
        "`ts` = @`__matchstream_prop_timestamp`, `p` = @`__matchstream_prop_partition`")
    assert spec.message_properties == ("prop_offset", "prop_timestamp")
    assert spec.partition_properties == ("prop_partition",)
    lines = spec.message_lines([Message(7, b"1,x", 1700), Message(8, b"2,y\n3,z\n", 1800)])
    assert lines == [b"7,1700,1,x\n", b"8,1800,2,y\n8,1800,3,z\n"]
    assert spec.without_prefix(b"8,1800,3,z") == b"3,z"


def test_without_properties_the_values_only_get_their_terminator() -> None:
    spec = LoadSpec.from_pipeline(_create("INTO TABLE t"), "db")
    assert spec.message_lines([Message(0, b"a"), Message(1, b"b\n")]) == [b"a\n", b"b\n"]
    assert spec.without_prefix(b"12\tx") == b"12\tx"


@pytest.mark.parametrize(("value", "starts"), [
    (b"a,b\n", [0]),
    (b"a\nb\nc", [0, 2, 4]),
    (b'"x\ny",1\nz\n', [0, 8]),  # a line end inside an enclosed field is data
    (b'"x""\n",1\nz\n', [0, 9]),  # a doubled enclosure stays inside the field
    (b"a\\\nb\nc\n", [0, 5]),  # an escaped line end is data
    (b'x"y\nz\n', [0, 4]),  # an enclosure inside a field does not open one
])
def test_line_starts_split_like_load_data(value: bytes, starts: list[int]) -> None:
    assert line_starts(value, b"\n", b",", b'"', b"\\") == starts


def test_multi_character_terminators() -> None:
    assert line_starts(b"a||b\r\nc\r\n", b"\r\n", b"||", b"", b"") == [0, 6]


def test_lines_of_strips_the_prefix(tmp_path) -> None:
    from matchstream.engine.loader import lines_of

    spec = dataclasses.replace(LoadSpec.from_pipeline(_create(
        "INTO TABLE t (a) SET o = get_kafka_pipeline_prop('prop_offset')"), "db"))
    path = tmp_path / "f"
    path.write_bytes(b"".join(spec.message_lines([Message(3, b"x"), Message(4, b"y")])))
    assert lines_of(path, spec, [2]) == {2: b"y"}


def test_a_percent_separator_is_a_separator() -> None:
    spec = LoadSpec.from_pipeline(_create(
        "INTO TABLE t FIELDS TERMINATED BY '%' (a) SET o = get_kafka_pipeline_prop('prop_offset')"),
        "db")
    assert spec.message_lines([Message(4, b"x")]) == [b"4%x\n"]

"""SQL script splitting, pipeline-statement detection and ${NAME} placeholders."""

from __future__ import annotations

import pytest

from matchstream.ddl import (
    ScriptError,
    ScriptStatement,
    is_pipeline_statement,
    prepare_script,
    split_statements,
    substitute,
)


def texts(script: str) -> list[str]:
    return [s.text for s in split_statements(script)]


def test_split_keeps_semicolons_inside_literals_and_comments():
    script = (
        "INSERT INTO t VALUES ('a;b', \"c;d\", 'it''s;', 'x\\';y');\n"
        "SELECT `we;ird` FROM t -- trailing; comment\n;\n"
        "/* block; comment */ SELECT 1 # hash; comment\n;"
        "SELECT 2"
    )
    assert texts(script) == [
        "INSERT INTO t VALUES ('a;b', \"c;d\", 'it''s;', 'x\\';y')",
        "SELECT `we;ird` FROM t",
        "SELECT 1",
        "SELECT 2",
    ]


def test_split_records_file_positions():
    script = "USE ml;\n\n  -- setup\n  CREATE TABLE t (\n    id INT\n  );  DROP TABLE t;"
    stmts = split_statements(script, "sql/00_schema.sql")
    assert stmts == [
        ScriptStatement("USE ml", 1, 1, "sql/00_schema.sql"),
        ScriptStatement("CREATE TABLE t (\n    id INT\n  )", 4, 3, "sql/00_schema.sql"),
        ScriptStatement("DROP TABLE t", 6, 7, "sql/00_schema.sql"),
    ]
    assert stmts[1].location == "sql/00_schema.sql:4:3"


def test_split_keeps_inner_comments_and_drops_empty_statements():
    assert texts(";; -- only a comment\n;/* x */;SELECT /* keep */ 1;;") == ["SELECT /* keep */ 1"]
    assert texts("") == []
    assert texts("/*!40101 SET NAMES utf8 */;") == ["/*!40101 SET NAMES utf8 */"]


def test_split_error_names_file_line_col():
    with pytest.raises(ScriptError) as info:
        split_statements("SELECT 1;\nSELECT 'oops;\nSELECT 3;", "a.sql")
    error = info.value
    assert (error.source, error.line, error.col) == ("a.sql", 2, 8)
    assert str(error).startswith("a.sql:2:8: unterminated quoted string")


@pytest.mark.parametrize(
    "text",
    [
        "CREATE PIPELINE p AS LOAD DATA KAFKA 'h/t' INTO TABLE t",
        "create or replace pipeline p as ...",
        "CREATE AGGREGATOR PIPELINE p",
        "CREATE OR REPLACE AGGREGATOR PIPELINE p",
        "-- comment\nSTART PIPELINE p",
        "START ALL PIPELINES",
        "START FAILED PIPELINES",
        "STOP PIPELINE p",
        "STOP ALL PIPELINES",
        "DROP PIPELINE IF EXISTS p",
        "ALTER PIPELINE p SET OFFSETS EARLIEST",
        "TEST PIPELINE p",
        "EXTRACT PIPELINE p INTO OUTFILE 'x'",
        "PROFILE PIPELINE p",
        "DETACH PIPELINE p",
        "SHOW PIPELINES",
        "show create pipeline p",
        "SHOW PROFILE PIPELINE p",
        "CLEAR PIPELINE ERRORS",
        "/* c */ SHOW PIPELINES",
        "SELECT id FROM t INTO KAFKA 'h/alerts'",
        "select id from t\n  into  kafka 'h/alerts' kafka key id",
        "WITH x AS (SELECT 1 AS id) SELECT id FROM x INTO KAFKA 'h/t'",
        "(SELECT 1) UNION (SELECT 2) INTO KAFKA 'h/t'",
        "/* c */ SELECT 1 INTO /* c */ KAFKA 'h/t'",
        "SELECT 1 INTO KAFKA 'unterminated",
    ],
)
def test_pipeline_statements_are_recognised(text):
    assert is_pipeline_statement(text)


@pytest.mark.parametrize(
    "text",
    [
        "SELECT * FROM information_schema.PIPELINES",
        "CREATE TABLE pipeline (id INT)",
        "CREATE OR REPLACE TABLE t (id INT)",
        "DROP TABLE pipelines",
        "SHOW TABLES",
        "SHOW CREATE TABLE t",
        "START TRANSACTION",
        "ALTER TABLE t ADD c INT",
        "`CREATE` PIPELINE",
        "SELECT 'unterminated",
        "",
        "SELECT 'INTO KAFKA' FROM t",
        "SELECT `into`, kafka FROM t",
        "SELECT * FROM (SELECT 1 INTO KAFKA 'h/t') x",
        "SELECT 1 INTO @kafka",
        "SELECT 1 INTO OUTFILE '/tmp/kafka'",
        "INSERT INTO kafka SELECT 1",
        "SELECT 1 INTO kafka_sink",
    ],
)
def test_ordinary_sql_is_not_a_pipeline_statement(text):
    assert not is_pipeline_statement(text)


def test_substitute_in_code_strings_and_identifiers():
    text = "CREATE PIPELINE ${NAME} AS LOAD DATA KAFKA '${BROKER}/t' INTO TABLE `${NAME}_x`"
    assert substitute(text, {"NAME": "p", "BROKER": "h:1"}) == (
        "CREATE PIPELINE p AS LOAD DATA KAFKA 'h:1/t' INTO TABLE `p_x`"
    )


def test_substitute_skips_comments_and_honours_the_escape():
    text = "SELECT '$${LITERAL}', '${A}' -- ${UNSET}\n/* ${UNSET} */ # ${UNSET}"
    assert substitute(text, {"A": "1"}) == (
        "SELECT '${LITERAL}', '1' -- ${UNSET}\n/* ${UNSET} */ # ${UNSET}"
    )


def test_substitute_values_are_verbatim():
    assert substitute("x ${V} y", {"V": "a;'b"}) == "x a;'b y"
    assert substitute("$x $ {y} $$", {}) == "$x $ {y} $$"


def test_unknown_placeholder_names_file_line_col():
    with pytest.raises(ScriptError) as info:
        substitute("SELECT 1,\n  '${KAFKA_BROKER}'", {"OTHER": "x"}, "sql/10.sql", line=7, col=3)
    error = info.value
    assert (error.source, error.line, error.col) == ("sql/10.sql", 8, 4)
    assert error.snippet.startswith("${KAFKA_BROKER}")
    assert "KAFKA_BROKER" in error.reason and "--var KAFKA_BROKER=" in error.reason


@pytest.mark.parametrize("text", ["'${}'", "'${1X}'", "'${A'", "${A-B}"])
def test_malformed_placeholder_is_an_error(text):
    with pytest.raises(ScriptError) as info:
        substitute(text, {"A": "1"})
    assert "malformed placeholder" in info.value.reason


def test_prepare_script_splits_before_substituting():
    script = "USE ${DB};\nSELECT '${V}';"
    stmts = prepare_script(script, "s.sql", {"DB": "ml", "V": "a;b"})
    assert stmts == [
        ScriptStatement("USE ml", 1, 1, "s.sql"),
        ScriptStatement("SELECT 'a;b'", 2, 1, "s.sql"),
    ]
    with pytest.raises(ScriptError) as info:
        prepare_script(script, "s.sql", {"DB": "ml"})
    assert (info.value.line, info.value.col) == (2, 9)

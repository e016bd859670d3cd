"""Unit tests of the SingleStore gate (matchstream/gate): each refusal with its position and
alternative, each translation and emulation, and the engine-variable values."""

from __future__ import annotations

import pytest

from matchstream.ddl import ast
from matchstream.engine import catalog, variables
from matchstream.gate import Forward, GateRefusal, SetVariables, ShowVariables, check_statement


def refusal(sql: str, *, line: int = 1) -> GateRefusal:
    with pytest.raises(GateRefusal) as info:
        check_statement(sql, source="t.sql", line=line)
    return info.value


def test_create_or_replace_view_is_refused_at_or_with_the_singlestore_spelling() -> None:
    error = refusal("CREATE OR REPLACE VIEW db.v AS SELECT 1", line=7)
    assert (error.source, error.line, error.col) == ("t.sql", 7, 8)
    assert error.construct == "CREATE OR REPLACE VIEW"
    assert "DROP VIEW IF EXISTS db.v; CREATE VIEW db.v AS" in error.alternative
    assert "ALTER VIEW" in error.alternative
    assert error.reference.endswith("/create-view/")
    assert str(error).startswith("t.sql:7:8: CREATE OR REPLACE VIEW")


def test_view_options_between_or_replace_and_view_are_skipped() -> None:
    error = refusal("CREATE OR REPLACE SQL SECURITY INVOKER VIEW v AS SELECT 1")
    assert error.construct == "CREATE OR REPLACE VIEW"


@pytest.mark.parametrize(("sql", "construct", "col"), [
    ("CREATE OR REPLACE TABLE t (a INT)", "CREATE OR REPLACE TABLE", 8),
    ("CREATE OR REPLACE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1",
     "CREATE OR REPLACE TRIGGER", 8),
    ("CREATE DEFINER = root TRIGGER tr AFTER INSERT ON t FOR EACH ROW SET @x = 1", "triggers", 23),
    ("CREATE TABLE t (a INT, CONSTRAINT fk FOREIGN KEY (a) REFERENCES u (b))", "FOREIGN KEY", 38),
    ("ALTER TABLE t ADD FOREIGN KEY (a) REFERENCES u (b)", "FOREIGN KEY", 19),
    ("CREATE TABLE t (a INT)\n  ENGINE = InnoDB DEFAULT CHARSET=utf8mb4", "ENGINE=", 3),
    ("ALTER TABLE t ENGINE=Aria", "ENGINE=", 15),
    ("DELETE FROM t WHERE a = 1 RETURNING a", "DELETE ... RETURNING", 27),
])
def test_mariadb_only_constructs_are_refused_where_they_are(sql: str, construct: str,
                                                            col: int) -> None:
    error = refusal(sql)
    assert error.construct.startswith(construct)
    assert error.col == col
    assert error.line == (2 if "\n" in sql else 1)
    assert error.alternative
    assert error.reference.startswith("https://docs.singlestore.com/")


@pytest.mark.parametrize("sql", [
    "SELECT 'CREATE OR REPLACE VIEW v AS SELECT 1'",  # a string, not a statement
    "SELECT `minute`, t.minute FROM t",  # quoted, or after a period
    "SELECT NOW() - INTERVAL 15 MINUTE",  # a keyword used as a keyword
    "CREATE OR REPLACE PROCEDURE p() AS BEGIN END",  # SingleStore has OR REPLACE for these
    "-- CREATE OR REPLACE VIEW in a comment\nSELECT 1",
    "CREATE TABLE t (engine_name VARCHAR(8), KEY (engine_name))",
])
def test_lookalikes_pass(sql: str) -> None:
    assert isinstance(check_statement(sql), Forward)


def test_information_schema_pipelines_in_any_case_read_the_catalog() -> None:
    verdict = check_statement("SELECT c.CURSOR_OFFSET FROM "
                              "Information_Schema.`pipelines_cursors` c JOIN "
                              "information_schema.PIPELINES p USING (PIPELINE_NAME)")
    assert verdict == Forward(
        "SELECT c.CURSOR_OFFSET FROM `matchstream_catalog`.`PIPELINES_CURSORS` c JOIN "
        "`matchstream_catalog`.`PIPELINES` p USING (PIPELINE_NAME)", uses_catalog=True)


def test_other_information_schema_tables_stay_mariadbs() -> None:
    sql = ("SELECT TABLE_NAME FROM information_schema.TABLES "
           "WHERE TABLE_SCHEMA = 'information_schema'")
    assert check_statement(sql) == Forward(sql)


def test_the_translator_names_every_catalog_view() -> None:
    from matchstream.gate.translation import CATALOG_VIEWS

    views = {s.split("`")[3] for s in catalog._DDL if "VIEW" in s.split("\n")[0]}
    tables = {"PIPELINES_CURSORS", "PIPELINES_BATCHES", "PIPELINES_ERRORS"}
    assert set(CATALOG_VIEWS) == views | tables
    assert variables._SCHEMA == catalog.CATALOG_SCHEMA


def test_variable_reads_are_labelled_as_written_only_when_bare() -> None:
    bare = check_statement("SELECT @@pipelines_batch_interval, 1")
    assert isinstance(bare, Forward) and bare.uses_catalog
    assert bare.text.endswith("2500)) AS `@@pipelines_batch_interval`, 1")
    inside = check_statement("SELECT @@pipelines_batch_interval * 2 AS twice")
    assert isinstance(inside, Forward) and "AS `@@" not in inside.text


@pytest.mark.parametrize(("sql", "values"), [
    ("SET GLOBAL pipelines_batch_interval = 1234", (("pipelines_batch_interval", "1234"),)),
    ("set global PIPELINES_STOP_ON_ERROR = 'off'", (("pipelines_stop_on_error", "OFF"),)),
    ("SET @@global.pipelines_stop_on_error = 1, GLOBAL pipelines_batch_interval = DEFAULT",
     (("pipelines_stop_on_error", "ON"), ("pipelines_batch_interval", "2500"))),
])
def test_set_global_pipelines_variables_is_emulated(sql: str, values: tuple[tuple[str, str], ...]
                                                    ) -> None:
    assert check_statement(sql) == SetVariables(values)


@pytest.mark.parametrize(("sql", "construct"), [
    ("SET SESSION pipelines_batch_interval = 5", "SET SESSION pipelines_batch_interval"),
    ("SET GLOBAL pipelines_batch_interval = 5, GLOBAL max_connections = 10", "SET of pipelines_*"),
    ("SET GLOBAL pipelines_max_offsets_per_batch_partition = 0",
     "SET GLOBAL pipelines_max_offsets_per_batch_partition = 0"),
    ("SET GLOBAL pipelines_batch_interval = 1 + 1", "SET GLOBAL pipelines_batch_interval = <"),
])
def test_set_the_engine_cannot_take_is_refused(sql: str, construct: str) -> None:
    assert refusal(sql).construct.startswith(construct)


def test_other_set_and_show_statements_pass_unchanged() -> None:
    assert check_statement("SET NAMES utf8mb4") == Forward("SET NAMES utf8mb4")
    assert check_statement("SHOW TABLES") == Forward("SHOW TABLES")
    assert check_statement("SHOW VARIABLES WHERE Variable_name = 'x'") == Forward(
        "SHOW VARIABLES WHERE Variable_name = 'x'")
    assert check_statement("SHOW VARIABLES LIKE 'pipe%'") == ShowVariables(
        "SHOW VARIABLES LIKE 'pipe%'", "pipe%")


def test_variables_default_to_singlestores_and_parse_like_it() -> None:
    assert variables.defaults_from({}) == ast.BatchDefaults(2500, True, 4, 1_000_000)
    stored = {"pipelines_stop_on_error": "OFF", "pipelines_batch_interval": "garbage"}
    assert variables.defaults_from(stored) == ast.BatchDefaults(2500, False, 4, 1_000_000)


def test_a_pipeline_clause_beats_the_variable_and_none_follows_it() -> None:
    from matchstream.ddl import parse_statement

    stmt = parse_statement("CREATE PIPELINE p AS LOAD DATA KAFKA 'h/t' BATCH_INTERVAL 10 "
                           "INTO TABLE t")
    assert isinstance(stmt, ast.CreatePipeline)
    defaults = ast.BatchDefaults(batch_interval=1234, stop_on_error=False)
    with_vars = stmt.__class__(**{**stmt.__dict__, "defaults": defaults})
    assert with_vars == stmt  # the variables are not part of the statement
    assert with_vars.effective_batch_interval == 10
    assert with_vars.effective_stop_on_error is False
    assert stmt.effective_stop_on_error is True


@pytest.mark.parametrize(("sql", "word", "col"), [
    ("SELECT minute, COUNT(*) FROM t GROUP BY minute", "minute", 8),
    ("INSERT INTO model_actions (action) VALUES ('pin')", "action", 28),
])
def test_a_restricted_keyword_as_a_bare_name_is_a_warning_and_still_runs(
        sql: str, word: str, col: int) -> None:
    verdict = check_statement(sql, source="q.sql")
    assert isinstance(verdict, Forward) and verdict.text == sql
    (warning,) = verdict.warnings
    assert warning.startswith(f"warning: q.sql:1:{col}: restricted keyword {word!r} as a name")
    assert f"back-quote it: `{word}`" in warning


@pytest.mark.parametrize("sql", [
    "DELETE FROM information_schema.PIPELINES_CURSORS",
    "TRUNCATE TABLE information_schema.pipelines_errors",
    "INSERT INTO information_schema.PIPELINES_ERRORS VALUES (1)",
    "UPDATE information_schema.PIPELINES_CURSORS SET CURSOR_OFFSET = 0",
    "DROP TABLE information_schema.PIPELINES_CURSORS",
])
def test_a_write_to_the_pipeline_views_is_refused_not_sent_to_the_catalog(sql: str) -> None:
    assert refusal(sql).construct.startswith("a write to information_schema.PIPELINES")


def test_reading_the_pipeline_views_into_a_table_is_translated() -> None:
    verdict = check_statement("INSERT INTO t SELECT PIPELINE_NAME "
                              "FROM information_schema.PIPELINES")
    assert isinstance(verdict, Forward) and "`matchstream_catalog`.`PIPELINES`" in verdict.text


@pytest.mark.parametrize(("value", "why"), [
    ("'\u00b2'", "unsigned integer"), ("'\u0661\u0662'", "unsigned integer"),
    ("9" * 31, "largest value"),
])
def test_a_set_global_value_that_is_no_plain_number_is_refused(value: str, why: str) -> None:
    from matchstream.engine.variables import VARIABLES, VariableValueError

    with pytest.raises(VariableValueError, match=why):
        VARIABLES["pipelines_batch_interval"].parse(value.strip("'"))

"""The LOAD DATA text built from a pipeline, and the per-clause warning policy."""

from __future__ import annotations

import pytest

from matchstream.ddl import parse_statement
from matchstream.ddl.ast import CreatePipeline
from matchstream.engine.errors import UnsupportedOption
from matchstream.engine.loader import LoadSpec, RowIssue, split_lines, where_variables


def _spec(sql: str) -> LoadSpec:
    stmt = parse_statement(sql)
    assert isinstance(stmt, CreatePipeline)
    return LoadSpec.from_pipeline(stmt, "db`x")


BASE = "CREATE PIPELINE p AS LOAD DATA KAFKA 'h/t' "


def test_defaults_are_mysql_tab_separated_and_values_are_parameters() -> None:
    sql, params = _spec(BASE + "INTO TABLE `we``ird`").statement()
    assert sql == (
        "LOAD DATA LOCAL INFILE %s INTO TABLE `db``x`.`we``ird` FIELDS TERMINATED BY %s "
        "ENCLOSED BY %s ESCAPED BY %s LINES STARTING BY %s TERMINATED BY %s"
    )
    assert params == ["\t", "", "\\", "", "\n"]


def test_options_column_list_and_set_are_carried_over() -> None:
    sql, params = _spec(
        BASE + "REPLACE INTO TABLE t CHARACTER SET utf8mb4 FIELDS TERMINATED BY ',' "
        "OPTIONALLY ENCLOSED BY '\"' LINES TERMINATED BY '\\r\\n' IGNORE 1 LINES "
        "(a, @b, @) SET c = @b + 1"
    ).statement()
    assert sql.startswith("LOAD DATA LOCAL INFILE %s REPLACE INTO TABLE `db``x`.`t`")
    assert "CHARACTER SET `utf8mb4`" in sql and "OPTIONALLY ENCLOSED BY %s" in sql
    assert sql.endswith(
        "IGNORE 1 LINES (`a`, @`b`, @`__matchstream_discard`) SET `c` = @b + 1"
    )
    assert params == [",", '"', "\\", "", "\r\n"]


@pytest.mark.parametrize("clause", ["WHERE @a > 1", "TRAILING NULLCOLS"])
def test_clauses_mariadb_cannot_honour_are_rejected(clause: str) -> None:
    # WHERE itself is supported now (through a staging table); a LOAD DATA variable in it is not.
    with pytest.raises(UnsupportedOption, match="not supported by the local engine"):
        _spec(BASE + "INTO TABLE t " + clause)


def test_where_is_kept_and_does_not_change_the_load_data_text() -> None:
    plain = _spec(BASE + "INTO TABLE t (a, @b) SET c = @b")
    spec = _spec(BASE + "INTO TABLE t (a, @b) SET c = @b WHERE c > 1 AND a % 2 = 0")
    assert plain.where is None and spec.where == "c > 1 AND a % 2 = 0"
    assert spec.statement() == plain.statement()


def test_staging_column_list_only_stands_in_for_a_missing_one() -> None:
    spec = _spec(BASE + "INTO TABLE t WHERE a > 1")
    sql, _ = spec.statement("stage", columns=("`a`", "`b`"))
    assert "INTO TABLE `db``x`.`stage`" in sql and sql.endswith(" (`a`, `b`)")
    listed = _spec(BASE + "INTO TABLE t (a, @) WHERE a > 1")
    sql, _ = listed.statement("stage", columns=("`a`", "`b`"))
    assert sql.endswith(" (`a`, @`__matchstream_discard`)")


def test_where_variables_are_found_with_their_column() -> None:
    assert where_variables("a > 1 AND @raw <> '' OR @`x y` = 2") == [("@raw", 11), ("@`x y`", 25)]
    # System variables, and text inside strings or identifiers, are not LOAD DATA variables.
    assert where_variables("@@session.sql_mode <> '' AND b = '@nope' AND `@c` = 1") == []


def test_a_load_data_variable_in_where_is_rejected_with_its_position() -> None:
    with pytest.raises(UnsupportedOption) as raised:
        _spec(BASE + "INTO TABLE t (a, @v) SET b = @v WHERE a > 0 AND @v <> ''")
    message = str(raised.value)
    assert "@v in WHERE (column 11 of the condition \"a > 0 AND @v <> ''\")" in message
    assert "not supported by the local engine" in message
    assert "SET a column from the variable" in message


@pytest.mark.parametrize(
    "handling, parser, duplicate, constraint",
    [
        ("", None, None, None),
        ("REPLACE", None, None, None),
        ("IGNORE", "keep", "keep", "keep"),
        ("SKIP PARSER ERRORS", "drop", None, None),
        ("SKIP DUPLICATE KEY ERRORS", None, "keep", None),
        ("SKIP CONSTRAINT ERRORS", None, None, "drop"),
        ("SKIP ALL ERRORS", "drop", "keep", "drop"),
    ],
)
def test_warning_policy_per_clause(handling, parser, duplicate, constraint) -> None:
    spec = _spec(BASE + handling + " INTO TABLE t")
    assert spec.accepts(RowIssue(1261, "Row 1 ...", 1)) == parser
    assert spec.accepts(RowIssue(1062, "Duplicate entry", 1)) == duplicate
    assert spec.accepts(RowIssue(1366, "Incorrect integer value", 1)) == constraint


def test_split_lines_counts_like_load_data() -> None:
    assert split_lines(b"", b"\n") == []
    assert split_lines(b"a\nb\n", b"\n") == [b"a", b"b"]
    assert split_lines(b"a\nb", b"\n") == [b"a", b"b"]
    assert split_lines(b"a\r\n\r\nb\r\n", b"\r\n") == [b"a", b"", b"b"]

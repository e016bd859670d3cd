"""The LOAD DATA text built from a pipeline, and the per-clause warning policy."""

from __future__ import annotations

import pytest

from matchstream.ddl import parse_statement
from matchstream.ddl.ast import CreatePipeline
from matchstream.engine.errors import UnsupportedOption
from matchstream.engine.loader import LoadSpec, RowIssue, split_lines


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


@pytest.mark.parametrize("clause", ["WHERE a > 1", "TRAILING NULLCOLS"])
def test_clauses_mariadb_cannot_honour_are_rejected(clause: str) -> None:
    with pytest.raises(UnsupportedOption, match="not supported by the local engine"):
        _spec(BASE + "INTO TABLE t " + clause)


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

"""RETRY_OPTIONS in CREATE and ALTER PIPELINE: golden files tests/fixtures/ddl/retry_options_*.sql
(round trip, normalisation, rejections with their positions), read like test_ddl_golden.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from matchstream.ddl import (
    DdlError,
    UnsupportedByLocalEngine,
    ast,
    parse_statement,
    render,
    split_statements,
)

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "ddl"
_EXPECT = re.compile(r"^(?P<sql>.*?) -- expect: (?P<line>\d+):(?P<col>\d+) (?P<fragment>.+)$")


def _statements(name: str) -> list[object]:
    return list(split_statements((FIXTURES / name).read_text(), name))


def _ok():
    return [pytest.param(s, id=f"L{s.line}") for s in _statements("retry_options_ok.sql")]


def _pairs():
    stmts = _statements("retry_options_normalise.sql")
    assert stmts and len(stmts) % 2 == 0
    return [pytest.param(a, b, id=f"L{a.line}") for a, b in zip(stmts[::2], stmts[1::2],
                                                                  strict=True)]


def _bad():
    params = []
    for number, raw in enumerate((FIXTURES / "retry_options_bad.sql").read_text().splitlines(), 1):
        if raw.strip() and not raw.startswith("--"):
            match = _EXPECT.match(raw)
            assert match, f"retry_options_bad.sql:{number}: no expectation"
            params.append(pytest.param(number, match, id=f"L{number}"))
    return params


@pytest.mark.parametrize("stmt", _ok())
def test_round_trip(stmt) -> None:  # noqa: ANN001 - a split_statements statement
    node = parse_statement(stmt.text, line=stmt.line, col=stmt.col, source=stmt.source_name)
    assert render(node) == stmt.text
    assert parse_statement(render(node)) == node


@pytest.mark.parametrize(("given", "expected"), _pairs())
def test_normalise(given, expected) -> None:  # noqa: ANN001
    node = parse_statement(given.text)
    assert render(node) == expected.text
    assert parse_statement(expected.text) == node


@pytest.mark.parametrize(("number", "match"), _bad())
def test_rejected(number: int, match: re.Match[str]) -> None:
    with pytest.raises(DdlError) as info:
        parse_statement(match["sql"], line=number, source="retry_options_bad.sql")
    error = info.value
    assert (error.line, error.col) == (int(match["line"]), int(match["col"])), error.reason
    assert match["fragment"] in error.reason
    assert isinstance(error, UnsupportedByLocalEngine) == ("not supported" in error.reason)


def test_the_values_reach_the_ast() -> None:
    stmt = parse_statement(
        "CREATE PIPELINE p AS LOAD DATA KAFKA 'h/t' RETRY_OPTIONS "
        """'{"exponential": false, "retry_interval": 7, "max_retry_interval": 70, """
        """"max_retries": 0}'"""
        " INTO TABLE t")
    assert isinstance(stmt, ast.CreatePipeline)
    assert stmt.retry_options == ast.RetryOptions(False, 7, 70, 0)
    alter = parse_statement("""ALTER PIPELINE p SET RETRY_OPTIONS '{"max_retries": 2}'""")
    assert isinstance(alter, ast.AlterPipeline)
    (action,) = alter.actions
    assert isinstance(action, ast.SetRetryOptions)
    assert action.apply(stmt).retry_options == ast.RetryOptions(max_retries=2)

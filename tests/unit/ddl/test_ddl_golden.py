"""Golden-file tests: tests/fixtures/ddl/*.sql (sqlglot's identity-file habit)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from matchstream.ddl import (
    DdlError,
    UnsupportedByLocalEngine,
    parse_statement,
    render,
    split_statements,
)

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "ddl"
_EXPECT = re.compile(r"^(?P<sql>.*?) -- expect: (?P<line>\d+):(?P<col>\d+) (?P<fragment>.+)$")


def _ok_statements():
    stmts = split_statements((FIXTURES / "pipelines_ok.sql").read_text(), "pipelines_ok.sql")
    return [pytest.param(s, id=f"L{s.line}") for s in stmts]


def _normalise_pairs():
    stmts = split_statements(
        (FIXTURES / "pipelines_normalise.sql").read_text(), "pipelines_normalise.sql"
    )
    assert len(stmts) % 2 == 0, "pipelines_normalise.sql holds input/expected pairs"
    return [
        pytest.param(given, expected, id=f"L{given.line}")
        for given, expected in zip(stmts[::2], stmts[1::2], strict=True)
    ]


def _bad_lines():
    params = []
    path = FIXTURES / "pipelines_bad.sql"
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        if not raw.strip() or raw.startswith("--"):
            continue
        match = _EXPECT.match(raw)
        assert match, f"{path.name}:{number}: missing '-- expect: <line>:<col> <fragment>'"
        params.append(pytest.param(number, match, id=f"L{number}"))
    return params


@pytest.mark.parametrize("stmt", _ok_statements())
def test_round_trip(stmt):
    node = parse_statement(stmt.text, line=stmt.line, col=stmt.col, source=stmt.source_name)
    assert render(node) == stmt.text
    assert parse_statement(render(node)) == node


@pytest.mark.parametrize(("given", "expected"), _normalise_pairs())
def test_normalise(given, expected):
    node = parse_statement(given.text)
    assert render(node) == expected.text
    assert parse_statement(expected.text) == node


@pytest.mark.parametrize(("number", "match"), _bad_lines())
def test_rejected(number, match):
    with pytest.raises(DdlError) as info:
        parse_statement(match["sql"], line=number, source="pipelines_bad.sql")
    error = info.value
    assert (error.line, error.col) == (int(match["line"]), int(match["col"])), error.reason
    assert match["fragment"] in error.reason
    assert error.source == "pipelines_bad.sql"
    unsupported = "not supported by the local engine" in error.reason
    assert isinstance(error, UnsupportedByLocalEngine) == unsupported


def test_golden_files_cover_every_statement_kind():
    from matchstream.ddl import ast

    kinds = {type(parse_statement(s.values[0].text)) for s in _ok_statements()}
    statement_types = set(ast.Statement.__args__)  # type: ignore[attr-defined]
    assert kinds == statement_types

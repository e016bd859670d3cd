"""Conformance golden file: tests/fixtures/gate/singlestore_docs.sql (statements from
SingleStore's documentation and what the gate answers), in the style of tests/fixtures/ddl."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from matchstream.gate import Forward, GateRefusal, SetVariables, ShowVariables, check_statement

FIXTURE = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "gate" / \
    "singlestore_docs.sql"
_LINE = re.compile(r"^(?P<sql>.*?) -- expect: (?P<kind>accepted|translated|set|show|refused|warned)"
                   r"(?: (?P<rest>.*))?$")
_REFUSED = re.compile(r"^(?P<line>\d+):(?P<col>\d+) (?P<construct>.+)$")


def _cases() -> list[object]:
    cases = []
    for number, raw in enumerate(FIXTURE.read_text(encoding="utf-8").splitlines(), 1):
        if not raw.strip() or raw.startswith("--"):
            continue
        match = _LINE.match(raw)
        assert match, f"{FIXTURE.name}:{number}: missing '-- expect: <outcome>'"
        cases.append(pytest.param(number, match["sql"], match["kind"], match["rest"] or "",
                                  id=f"L{number}"))
    return cases


@pytest.mark.parametrize(("number", "sql", "kind", "rest"), _cases())
def test_conformance(number: int, sql: str, kind: str, rest: str) -> None:
    if kind == "refused":
        expected = _REFUSED.match(rest)
        assert expected, rest
        with pytest.raises(GateRefusal) as info:
            check_statement(sql, source=FIXTURE.name, line=number)
        error = info.value
        assert (error.line, error.col) == (int(expected["line"]), int(expected["col"])), error
        assert error.construct.startswith(expected["construct"]), error.construct
        assert error.source == FIXTURE.name
        assert error.alternative and error.reference.startswith("https://docs.singlestore.com/")
        return
    verdict = check_statement(sql, source=FIXTURE.name, line=number)
    if kind == "warned":
        expected = _REFUSED.match(rest)
        assert expected and isinstance(verdict, Forward) and verdict.text == sql, rest
        (warning,) = verdict.warnings
        assert warning.startswith(f"warning: {FIXTURE.name}:{expected['line']}:"
                                  f"{expected['col']}: {expected['construct']}"), warning
        return
    if kind == "accepted":
        assert verdict == Forward(sql, uses_catalog=False)
    elif kind == "translated":
        assert isinstance(verdict, Forward)
        assert verdict.text == rest.removeprefix("=> ")
    elif kind == "set":
        pairs = tuple(tuple(p.split("=", 1)) for p in rest.split(","))
        assert verdict == SetVariables(pairs)  # type: ignore[arg-type]
    else:
        assert verdict == ShowVariables(sql, None if rest == "*" else rest)


def test_every_outcome_is_covered() -> None:
    kinds = {c.values[2] for c in _cases()}  # type: ignore[attr-defined]
    assert kinds == {"accepted", "translated", "set", "show", "refused", "warned"}

"""``SET GLOBAL pipelines_* = value`` and ``SHOW VARIABLES``: SingleStore's engine variables for
pipelines, which MariaDB does not have, answered from the local catalog.

A ``SET`` that names no ``pipelines_*`` variable is MariaDB's business and passes unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from matchstream.ddl.tokens import Token, TokenType
from matchstream.engine import variables
from matchstream.gate.refusals import DOCS
from matchstream.gate.statement import GateStatement
from matchstream.gate.translation import unknown_variable, variable_name

__all__ = ["SetVariables", "ShowVariables", "set_variables", "show_variables"]


@dataclass(frozen=True)
class SetVariables:
    """Store these ``(name, normalised value)`` pairs in the catalog."""

    values: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ShowVariables:
    """Run ``text`` on MariaDB, then add the ``pipelines_*`` variables ``like`` matches
    (``None``: all of them)."""

    text: str
    like: str | None


def _items(tokens: list[Token]) -> list[list[Token]]:
    """The comma-separated assignments of ``SET ...`` (top level only)."""
    items: list[list[Token]] = [[]]
    depth = 0
    for token in tokens[1:]:
        if token.type is TokenType.OP and token.value in "()":
            depth += 1 if token.value == "(" else -1
        if depth == 0 and token.text == ",":
            items.append([])
        else:
            items[-1].append(token)
    return items


def _target(item: list[Token]) -> tuple[str, str | None, int] | None:
    """``(name, scope, index of '=')`` of one assignment, else None (``SET NAMES``, ...)."""
    if not item:
        return None
    scope, at = None, 0
    if item[0].is_keyword("GLOBAL", "SESSION", "LOCAL", "PERSIST"):
        scope, at = item[0].value.upper(), 1
    if at >= len(item):
        return None
    name_token = item[at]
    sys_var = variable_name(name_token)
    if sys_var is not None:
        name, scope = sys_var[0], sys_var[1] or scope or "SESSION"
    elif name_token.type in (TokenType.IDENT, TokenType.QUOTED_IDENT):
        name = name_token.value.lower()
    else:
        return None
    if at + 1 >= len(item) or item[at + 1].text not in ("=", ":="):
        return None
    return name, scope, at + 1


def set_variables(stmt: GateStatement) -> SetVariables | None:
    """The verdict for a ``SET`` naming ``pipelines_*`` variables, None for any other ``SET``;
    raises GateRefusal for one SingleStore or the local engine would not take."""
    items = _items(stmt.tokens)
    targets = [(_target(item), item) for item in items]
    ours = [(t, item) for t, item in targets if t is not None and t[0].startswith("pipelines_")]
    if not ours:
        return None
    if len(ours) != len(items):
        raise stmt.refusal(
            ours[0][1][0].start, "SET of pipelines_* and other variables together",
            "the local engine keeps pipelines_* variables in its catalog, apart from MariaDB's",
            "one SET GLOBAL for the pipelines_* variables and another for the rest",
            DOCS["variables"])
    values: list[tuple[str, str]] = []
    for (name, scope, eq), item in ours:
        first = item[0]
        if name not in variables.VARIABLES:
            raise unknown_variable(stmt, first.start, f"SET GLOBAL {name}",
                                   "leave it out locally; on SingleStore set it there")
        if scope != "GLOBAL":
            raise stmt.refusal(
                first.start, f"SET {scope + ' ' if scope else ''}{name}",
                f"{name} is a global engine variable", f"SET GLOBAL {name} = ...",
                DOCS["variables"])
        value = item[eq + 1 :]
        if len(value) != 1 or value[0].type not in (TokenType.NUMBER, TokenType.STRING,
                                                     TokenType.IDENT):
            where = value[0].start if value else item[eq].end
            raise stmt.refusal(
                where, f"SET GLOBAL {name} = <expression>",
                "not supported by the local engine, which takes a literal value for a "
                "pipelines_* variable",
                f"SET GLOBAL {name} = <number>, ON or OFF", DOCS["variables"])
        raw = value[0].value
        if value[0].is_keyword("DEFAULT"):
            raw = variables.VARIABLES[name].text(variables.VARIABLES[name].default)
        try:
            values.append((name, variables.normalise_value(name, raw)))
        except variables.VariableValueError as exc:
            raise stmt.refusal(value[0].start, f"SET GLOBAL {name} = {value[0].text}",
                               exc.reason, f"SET GLOBAL {name} = <valid value>",
                               DOCS["variables"]) from exc
    return SetVariables(tuple(values))


def show_variables(stmt: GateStatement) -> ShowVariables | None:
    """``SHOW [GLOBAL|SESSION] VARIABLES [LIKE 'pattern']``, else None (WHERE: MariaDB's only)."""
    tokens = stmt.tokens
    at = 1
    if len(tokens) > at and tokens[at].is_keyword("GLOBAL", "SESSION", "LOCAL"):
        at += 1
    if len(tokens) <= at or not tokens[at].is_keyword("VARIABLES"):
        return None
    rest = tokens[at + 1 :]
    if not rest:
        return ShowVariables(stmt.text, None)
    if len(rest) == 2 and rest[0].is_keyword("LIKE") and rest[1].type is TokenType.STRING:
        return ShowVariables(stmt.text, rest[1].value)
    return None

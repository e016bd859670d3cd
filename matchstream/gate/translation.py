"""Rewrites of SingleStore spellings the local MariaDB lacks, keeping the rest byte for byte.

* ``information_schema.PIPELINES*`` (any letter case, quoted or not) names the local catalog's
  view or table (``matchstream_catalog``, upper-case names);
* ``@@pipelines_*`` / ``@@GLOBAL.pipelines_*`` reads become a subquery on the catalog's
  ``engine_variables`` table (SingleStore's default when never SET), labelled as written when it
  is a bare select item, the way SingleStore names the column.

* ``CREATE ROWSTORE TABLE`` / ``CREATE REFERENCE TABLE`` create a plain table (one MariaDB
  node: every table is an in-memory-or-not, everywhere-present table), and ``SHARD KEY (c)`` /
  ``SORT KEY (c)`` become an index on the same columns (what they order or distribute by).

A SingleStore name the local engine does not have (``information_schema.PIPELINES_FILES``,
``@@pipelines_max_concurrent``) is refused, naming it, instead of failing in MariaDB.
"""

from __future__ import annotations

from dataclasses import dataclass

from matchstream.ddl.render import quote_identifier
from matchstream.ddl.tokens import Token, TokenType
from matchstream.engine import variables
from matchstream.gate.refusals import DOCS
from matchstream.gate.statement import GateStatement

__all__ = ["CATALOG_VIEWS", "Translation", "translate", "variable_name"]

_CATALOG = "matchstream_catalog"
# What the local catalog has (matchstream/engine/catalog.py).
CATALOG_VIEWS = ("PIPELINES", "PIPELINES_CURSORS", "PIPELINES_OFFSETS", "PIPELINES_BATCHES",
                 "PIPELINES_BATCHES_SUMMARY", "PIPELINES_ERRORS")
_NAMES = (TokenType.IDENT, TokenType.QUOTED_IDENT)
# After a bare select item comes one of these (or a comma, or the end).
_ITEM_END = {"FROM", "WHERE", "GROUP", "HAVING", "ORDER", "LIMIT", "UNION", "INTO", "FOR",
             "WINDOW"}


@dataclass(frozen=True)
class Translation:
    text: str
    changed: bool  # False: ``text`` is the statement as written
    uses_catalog: bool  # the text reads the local catalog: it must exist first


def variable_name(token: Token) -> tuple[str, str | None] | None:
    """``(name, scope)`` of a ``@@[scope.]name`` token (name lower-case), else None."""
    if token.type is not TokenType.VARIABLE or not token.value.startswith("@"):
        return None
    name, scope = token.value[1:], None
    head, dot, tail = name.partition(".")
    if dot and head.upper() in ("GLOBAL", "SESSION", "LOCAL"):
        name, scope = tail, head.upper()
    return name.lower(), scope


def translate(stmt: GateStatement) -> Translation:
    """``stmt`` with the rewrites above; raises GateRefusal for a name the engine lacks."""
    tokens = stmt.tokens
    edits: list[tuple[int, int, str]] = _table_kinds(stmt, tokens)
    plain_edits = len(edits)
    depth = 0
    for i, token in enumerate(tokens):
        if token.type is TokenType.OP and token.value in "()":
            depth += 1 if token.value == "(" else -1
        view = _catalog_reference(stmt, tokens, i)
        if view is not None:
            edits.append((token.start, tokens[i + 2].end,
                          f"{quote_identifier(_CATALOG)}.{quote_identifier(view)}"))
            continue
        read = variable_name(token)
        if read is None or not read[0].startswith("pipelines_"):
            continue
        name = read[0]
        if name not in variables.VARIABLES:
            raise stmt.refusal(
                token.start, f"@@{name}",
                "the local engine emulates only the pipelines_* variables it honours ("
                + ", ".join(sorted(variables.VARIABLES)) + ")",
                "leave it out locally; on SingleStore it keeps its default", DOCS["variables"])
        replacement = variables.read_expression(name)
        if depth == 0 and _bare_item(tokens, i):
            replacement += f" AS {quote_identifier(token.text)}"
        edits.append((token.start, token.end, replacement))
    if not edits:
        return Translation(stmt.text, False, False)
    out, pos = [], 0  # token offsets are offsets into stmt.text
    for start, end, replacement in edits:
        out.append(stmt.text[pos:start])
        out.append(replacement)
        pos = end
    out.append(stmt.text[pos:])
    return Translation("".join(out), True, len(edits) > plain_edits)


_TABLE_WORDS = {"ROWSTORE", "REFERENCE"}


def _table_kinds(stmt: GateStatement, tokens: list[Token]) -> list[tuple[int, int, str]]:
    """Edits dropping ROWSTORE/REFERENCE and turning SHARD/SORT KEY into KEY, in CREATE TABLE."""
    if not tokens or not tokens[0].is_keyword("CREATE"):
        return []
    edits: list[tuple[int, int, str]] = []
    at = 1
    while at < len(tokens) and tokens[at].is_keyword(*_TABLE_WORDS, "TEMPORARY", "GLOBAL"):
        if tokens[at].value.upper() in _TABLE_WORDS:
            end = tokens[at + 1].start if at + 1 < len(tokens) else tokens[at].end
            edits.append((tokens[at].start, end, ""))
        at += 1
    if at >= len(tokens) or not tokens[at].is_keyword("TABLE"):
        return []
    for i in range(at + 1, len(tokens) - 2):
        token, key = tokens[i], tokens[i + 1]
        if not (token.is_keyword("SHARD", "SORT") and key.is_keyword("KEY")):
            continue
        opener = next((j for j in range(i + 2, len(tokens)) if tokens[j].text == "("), None)
        if opener is None or opener + 1 >= len(tokens) or tokens[opener + 1].text == ")":
            raise stmt.refusal(
                token.start, f"{token.value.upper()} KEY ()",
                "the local engine has one node and no columnstore: an empty key has no index "
                "to stand for it", f"leave the empty {token.value.upper()} KEY out locally",
                DOCS["create table"])
        edits.append((token.start, key.end, "KEY"))
    return edits


def _catalog_reference(stmt: GateStatement, tokens: list[Token], i: int) -> str | None:
    """The catalog name ``information_schema.<name>`` at ``tokens[i]`` means, else None."""
    if i + 2 >= len(tokens):
        return None
    schema, dot, name = tokens[i], tokens[i + 1], tokens[i + 2]
    if (schema.type not in _NAMES or schema.value.lower() != "information_schema"
            or dot.text != "." or name.type not in _NAMES):
        return None
    if i > 0 and tokens[i - 1].text == ".":
        return None  # db.information_schema.x is not the schema
    upper = name.value.upper()
    if upper in CATALOG_VIEWS:
        return upper
    if upper.startswith("PIPELINES"):
        raise stmt.refusal(
            name.start, f"information_schema.{upper}",
            "the local engine's catalog has no such view (it has "
            + ", ".join(CATALOG_VIEWS) + ")",
            "query one of those; on SingleStore this view exists", DOCS["information_schema"])
    return None


def _bare_item(tokens: list[Token], i: int) -> bool:
    prev = tokens[i - 1] if i > 0 else None
    nxt = tokens[i + 1] if i + 1 < len(tokens) else None
    after_start = prev is not None and (prev.text == "," or prev.is_keyword("SELECT", "DISTINCT"))
    before_end = nxt is None or nxt.text == "," or nxt.is_keyword(*_ITEM_END)
    return after_start and before_end

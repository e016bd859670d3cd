"""Rewrites of SingleStore spellings the local MariaDB lacks, keeping the rest byte for byte.

* ``information_schema.PIPELINES*`` (any letter case, quoted or not) names the local catalog's
  view or table (``matchstream_catalog``, upper-case names);
* ``@@pipelines_*`` / ``@@GLOBAL.pipelines_*`` reads become a subquery on the catalog's
  ``engine_variables`` table (SingleStore's default when never SET), labelled as written when it
  is a bare select item, the way SingleStore names the column;
* ``CREATE ROWSTORE TABLE`` / ``CREATE REFERENCE TABLE`` create a plain table (one MariaDB node
  holds every row, so "reference" and "rowstore" change nothing it can show), and
  ``SHARD KEY (c)`` / ``SORT KEY (c)`` become an index on the same columns;
* SingleStore's JSON access on a column, ``config_json::$connection_string`` (string),
  ``c::%n`` (number), ``c::k`` (JSON) and chains ``c::a::$b``, becomes MariaDB's
  ``JSON_VALUE``/``JSON_EXTRACT`` on the same path;
* the ``:>`` / ``!:>`` cast operators are refused for ``CAST(x AS type)``, which both have.

A SingleStore name the local engine does not have (``information_schema.PIPELINES_FILES``,
``@@pipelines_max_concurrent``) is refused, naming it, instead of failing in MariaDB.
"""

from __future__ import annotations

from dataclasses import dataclass

from matchstream.ddl.render import quote_identifier
from matchstream.ddl.tokens import Token, TokenType
from matchstream.engine import variables
from matchstream.gate.errors import GateRefusal
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
    covered: set[int] = set()
    for edit, indices in _colon_operators(stmt, tokens):
        edits.append(edit)
        covered |= indices
    plain_edits = len(edits)
    depth = 0
    for i, token in enumerate(tokens):
        if i in covered:
            continue
        if token.type is TokenType.OP and token.value in "()":
            depth += 1 if token.value == "(" else -1
        view = _catalog_reference(stmt, tokens, i)
        if view is not None:
            replacement = f"{quote_identifier(_CATALOG)}.{quote_identifier(view)}"
            if _needs_alias(stmt, tokens, i):
                # Qualifiers keep working as written: information_schema.pipelines is
                # `pipelines`, and the catalog's upper-case names are case-sensitive here.
                replacement += f" AS {quote_identifier(tokens[i + 2].value)}"
            edits.append((token.start, tokens[i + 2].end, replacement))
            continue
        read = variable_name(token)
        if read is None or not read[0].startswith("pipelines_"):
            continue
        name = read[0]
        if name not in variables.VARIABLES:
            raise unknown_variable(stmt, token.start, f"@@{name}",
                                   "leave it out locally; on SingleStore it keeps its default")
        replacement = variables.read_expression(name)
        if depth == 0 and _bare_item(tokens, i):
            replacement += f" AS {quote_identifier(token.text)}"
        edits.append((token.start, token.end, replacement))
    if not edits:
        return Translation(stmt.text, False, False)
    out, pos = [], 0  # token offsets are offsets into stmt.text
    for start, end, replacement in sorted(edits):
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
                "not supported by the local engine, which has one node and no columnstore: an "
                "empty key has no index "
                "to stand for it", f"leave the empty {token.value.upper()} KEY out locally",
                DOCS["create table"])
        edits.append((token.start, key.end, "KEY"))
    return edits


def _colon_operators(
    stmt: GateStatement, tokens: list[Token]
) -> list[tuple[tuple[int, int, str], set[int]]]:
    """The ``::`` and ``:>`` operators: ``(edit, token indices it replaces)`` for every
    ``name::key...`` chain; raises GateRefusal for a ``:>`` cast and for ``::`` on something
    other than a (qualified) column name."""
    found: list[tuple[tuple[int, int, str], set[int]]] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if (token.text in (":", "!") and nxt is not None and not nxt.space_before
                and (nxt.text == ">" or (token.text == "!" and nxt.text == ":"))):
            raise stmt.refusal(
                token.start, "the :> cast operator",
                "not supported by the local engine (MariaDB has no :> or !:> operator)",
                "CAST(expression AS type), which SingleStore and MariaDB both have",
                DOCS["cast"])
        if token.text != "::":
            i += 1
            continue
        first = i - 1
        while (first >= 2 and tokens[first - 1].text == "."
               and tokens[first - 2].type in _NAMES):
            first -= 2
        if first < 0 or tokens[first].type not in _NAMES or tokens[first].is_keyword(
                "SELECT", "WHERE", "AND", "OR", "ON", "BY"):
            raise stmt.refusal(
                token.start, "the :: JSON operator on an expression",
                "not supported by the local engine on an expression (it translates :: only "
                "on a column)",
                "JSON_EXTRACT_STRING(expression, 'key') on SingleStore, or a column",
                DOCS["json"])
        keys: list[str] = []
        kind = "json"
        j = i
        while j < len(tokens) and tokens[j].text == "::" and kind == "json":
            key, kind, j = _json_step(tokens, j)
            if key is None:
                raise stmt.refusal(tokens[j - 1].start, "the :: JSON operator",
                                   "expected a key name after ::", "column::$key",
                                   DOCS["json"])
            keys.append(key)
        operand = stmt.text[tokens[first].start : tokens[i - 1].end]
        path = "$." + ".".join(_json_key(k) for k in keys)
        text = {"string": f"JSON_VALUE({operand}, '{path}')",
                "number": f"CAST(JSON_VALUE({operand}, '{path}') AS DOUBLE)",
                "json": f"JSON_EXTRACT({operand}, '{path}')"}[kind]
        found.append(((tokens[first].start, tokens[j - 1].end, text), set(range(first, j))))
        i = j
    return found


def unknown_variable(stmt: GateStatement, start: int, construct: str,
                     alternative: str) -> GateRefusal:
    """The refusal of a ``pipelines_*`` variable the local engine does not emulate."""
    return stmt.refusal(
        start, construct, "not supported by the local engine, which emulates only the "
        "pipelines_* variables it honours (" + ", ".join(sorted(variables.VARIABLES)) + ")",
        alternative, DOCS["variables"])


def _json_step(tokens: list[Token], at: int) -> tuple[str | None, str, int]:
    """The step ``::key`` / ``::$key`` / ``::%key`` at ``tokens[at]`` (the ``::``): its key (None
    if there is none), its kind and the index after it."""
    key = tokens[at + 1] if at + 1 < len(tokens) else None
    if key is None:
        return None, "json", at + 1
    kind, after = "json", at + 2
    if key.text in ("%", "$") and at + 2 < len(tokens):  # ::%name, ::$`name`
        kind, key, after = ("number" if key.text == "%" else "string"), tokens[at + 2], at + 3
    elif key.type is TokenType.IDENT and key.value.startswith("$"):
        return (key.value[1:] or None), "string", after
    if key.type not in _NAMES or not key.value:
        return None, kind, after
    return key.value, kind, after


def _json_key(key: str) -> str:
    """One JSON path step: a plain name as is, anything else double-quoted."""
    if key.replace("_", "a").isalnum() and not key[0].isdigit():
        return key
    return '"' + key.replace("\\", "\\\\").replace('"', '\\"').replace("'", "''") + '"'


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
    if upper in CATALOG_VIEWS or upper.startswith("PIPELINES"):
        prev = tokens[i - 1] if i > 0 else None
        if (stmt.words(1)[:1] and stmt.words(1)[0] in _WRITES) or (
                prev is not None and prev.is_keyword("INTO", "TABLE", "VIEW", "INSERT", "REPLACE")):
            # Both databases refuse it; translated, it would rewrite the engine's own state.
            raise stmt.refusal(
                schema.start, f"a write to information_schema.{upper}",
                "information_schema is read-only (on SingleStore as in MariaDB); here it "
                "would change the local engine's catalog",
                "ALTER PIPELINE ... SET OFFSETS, CLEAR PIPELINE ERRORS or DROP PIPELINE",
                DOCS["information_schema"])
    if upper in CATALOG_VIEWS:
        return upper
    if upper.startswith("PIPELINES"):
        raise stmt.refusal(
            name.start, f"information_schema.{upper}",
            "not supported by the local engine, whose catalog has no such view (it has "
            + ", ".join(CATALOG_VIEWS) + ")",
            "query one of those; on SingleStore this view exists", DOCS["information_schema"])
    return None


# Statements that write what they name (INSERT and REPLACE write only their INTO target).
_WRITES = {"DELETE", "UPDATE", "DROP", "TRUNCATE", "ALTER", "RENAME", "LOCK", "LOAD", "HANDLER"}

# What may follow a table reference that has no alias.
_AFTER_TABLE = {"WHERE", "JOIN", "LEFT", "RIGHT", "INNER", "CROSS", "NATURAL", "STRAIGHT_JOIN",
                "ON", "USING", "GROUP", "ORDER", "LIMIT", "UNION", "HAVING", "WINDOW", "FOR",
                "INTO", "LOCK", "EXCEPT", "INTERSECT", "PROCEDURE"}


def _needs_alias(stmt: GateStatement, tokens: list[Token], i: int) -> bool:
    """``tokens[i:i+3]`` is a table in a FROM/JOIN list with no alias of its own."""
    prev = tokens[i - 1] if i > 0 else None
    if prev is None or not (prev.is_keyword("FROM", "JOIN") or prev.text == ","):
        return False
    if stmt.words(1) in (["DELETE"], ["UPDATE"]):
        return False
    nxt = tokens[i + 3] if i + 3 < len(tokens) else None
    if nxt is None or nxt.text in (",", ")", ";"):
        return True
    return nxt.type is TokenType.IDENT and nxt.value.upper() in _AFTER_TABLE


def _bare_item(tokens: list[Token], i: int) -> bool:
    prev = tokens[i - 1] if i > 0 else None
    nxt = tokens[i + 1] if i + 1 < len(tokens) else None
    after_start = prev is not None and (prev.text == "," or prev.is_keyword("SELECT", "DISTINCT"))
    before_end = nxt is None or nxt.text == "," or nxt.is_keyword(*_ITEM_END)
    return after_start and before_end

"""What SingleStore rejects and MariaDB accepts, found in a statement's tokens.

Each rule names the construct, the SingleStore way to write it, and the page of SingleStore's
documentation that says so. A rule looks at keywords only (never inside strings, quoted names or
comments: the tokenizer keeps those apart), so ``SELECT 'CREATE OR REPLACE VIEW'`` passes.
"""

from __future__ import annotations

from collections.abc import Iterator

from matchstream.ddl.tokens import Token, TokenType
from matchstream.gate.errors import GateRefusal
from matchstream.gate.statement import GateStatement

__all__ = ["DOCS", "refusals"]

_BASE = "https://docs.singlestore.com/db/v9.1/reference/sql-reference"
DOCS = {
    "create view": f"{_BASE}/data-definition-language-ddl/create-view/",
    "create table": f"{_BASE}/data-definition-language-ddl/create-table/",
    "insert": f"{_BASE}/data-manipulation-language-dml/insert/",
    "cast": f"{_BASE}/conditional-functions/cast-or-convert/",
    "json": f"{_BASE}/json-functions/json-extract-type/",
    "unsupported": "https://docs.singlestore.com/cloud/developer-resources/unsupported-mysql-features/",
    "keywords": f"{_BASE}/restricted-keywords/list-of-restricted-keywords/",
    "variables": ("https://docs.singlestore.com/db/v9.1/reference/configuration-reference/"
                  "engine-variables/list-of-engine-variables/"),
    "information_schema": f"{_BASE.rsplit('/', 1)[0]}/information-schema-reference/pipelines/",
}

# Objects MariaDB lets CREATE OR REPLACE replace and SingleStore does not (SingleStore keeps
# OR REPLACE for PIPELINE, PROCEDURE, FUNCTION and AGGREGATE).
_REPLACEABLE = {"VIEW", "TABLE", "TRIGGER", "DATABASE", "SCHEMA", "INDEX", "SEQUENCE", "USER",
                "ROLE", "EVENT", "SERVER", "TEMPORARY"}
_TABLE_KINDS = {"TEMPORARY", "ROWSTORE", "COLUMNSTORE", "REFERENCE", "GLOBAL", "TABLE"}


def refusals(stmt: GateStatement) -> Iterator[GateRefusal]:
    """Every refusal of ``stmt``, in the order of the rules below (the caller raises the first)."""
    tokens = stmt.tokens
    if not tokens:
        return
    words = stmt.words(3)
    if words[:3] == ["CREATE", "OR", "REPLACE"]:
        yield from _or_replace(stmt, tokens)
    trigger = _trigger(tokens, words)
    if trigger is not None:
        yield stmt.refusal(
            trigger.start, "triggers", "SingleStore has no triggers",
            "do the work where the rows arrive: in the pipeline's SET/WHERE, its transform, or "
            "a pipeline INTO PROCEDURE", DOCS["unsupported"])
    if words[:2] == ["CREATE", "SEQUENCE"]:
        yield stmt.refusal(
            tokens[1].start, "CREATE SEQUENCE", "SingleStore has no sequences",
            "an AUTO_INCREMENT column", DOCS["create table"])
    if _is_table_ddl(words):
        yield from _table_options(stmt, tokens)
    if words[:1] and words[0] in ("INSERT", "REPLACE", "DELETE"):
        returning = _keyword_at_depth0(tokens, "RETURNING")
        if returning is not None:
            yield stmt.refusal(
                returning.start, f"{words[0]} ... RETURNING",
                "RETURNING is MariaDB's; SingleStore's INSERT and DELETE have no such clause",
                "read the rows with a SELECT after the statement", DOCS["insert"])


def _or_replace(stmt: GateStatement, tokens: list[Token]) -> Iterator[GateRefusal]:
    kind_at = next((i for i, t in enumerate(tokens[3:], 3)
                    if t.type is TokenType.IDENT and t.value.upper() in _REPLACEABLE), None)
    if kind_at is None:
        return
    kind = tokens[kind_at].value.upper()
    name = _object_name(tokens, kind_at + 1)
    if kind == "VIEW":
        alternative = (f"DROP VIEW IF EXISTS {name}; CREATE VIEW {name} AS ... "
                       f"(or ALTER VIEW {name} AS ... for a view that exists)")
        reference = DOCS["create view"]
    elif kind in ("TABLE", "TEMPORARY"):
        alternative = (f"DROP TABLE IF EXISTS {name}; CREATE TABLE {name} ... "
                       f"(or CREATE TABLE IF NOT EXISTS {name} ... to keep its rows)")
        reference = DOCS["create table"]
    elif kind == "TRIGGER":
        alternative = "no trigger at all: SingleStore has none (see the triggers refusal)"
        reference = DOCS["unsupported"]
    else:
        alternative = f"DROP {kind} IF EXISTS {name}; CREATE {kind} {name} ..."
        reference = DOCS["create table"]
    yield stmt.refusal(
        tokens[1].start, f"CREATE OR REPLACE {kind}",
        f"SingleStore does not support OR REPLACE for a {kind.lower()} (only for pipelines, "
        "procedures, functions and aggregates)", alternative, reference)


def _object_name(tokens: list[Token], at: int) -> str:
    """The (possibly qualified) name after ``VIEW``/``TABLE``..., skipping IF NOT EXISTS."""
    while at < len(tokens) and tokens[at].is_keyword("IF", "NOT", "EXISTS"):
        at += 1
    parts: list[str] = []
    while at < len(tokens) and tokens[at].type in (TokenType.IDENT, TokenType.QUOTED_IDENT):
        parts.append(tokens[at].text)
        if at + 1 < len(tokens) and tokens[at + 1].text == ".":
            at += 2
            continue
        break
    return ".".join(parts) or "name"


def _trigger(tokens: list[Token], words: list[str]) -> Token | None:
    """The TRIGGER keyword of CREATE [DEFINER = x] TRIGGER or DROP TRIGGER, else None."""
    if words[:1] == ["DROP"] and len(tokens) > 1 and tokens[1].is_keyword("TRIGGER"):
        return tokens[1]
    if words[:1] != ["CREATE"]:
        return None
    for token in tokens[1:8]:
        if token.is_keyword("TRIGGER"):
            return token
        if token.is_keyword("TABLE", "VIEW", "PIPELINE", "PROCEDURE", "FUNCTION", "DATABASE",
                            "INDEX", "USER", "AS", "SELECT"):
            return None
    return None


def _is_table_ddl(words: list[str]) -> bool:
    if words[:2] == ["ALTER", "TABLE"]:
        return True
    if words[:1] != ["CREATE"]:
        return False
    rest = words[1:]
    if rest[:2] == ["OR", "REPLACE"]:
        rest = rest[2:]
    return bool(rest) and rest[0] in _TABLE_KINDS


def _keyword_at_depth0(tokens: list[Token], word: str) -> Token | None:
    depth = 0
    for token in tokens:
        if token.type is TokenType.OP and token.value in "()":
            depth += 1 if token.value == "(" else -1
        elif depth == 0 and token.is_keyword(word):
            return token
    return None


def _table_options(stmt: GateStatement, tokens: list[Token]) -> Iterator[GateRefusal]:
    depth = 0
    for i, token in enumerate(tokens):
        if token.type is TokenType.OP and token.value in "()":
            depth += 1 if token.value == "(" else -1
            continue
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if token.is_keyword("FOREIGN") and nxt is not None and nxt.is_keyword("KEY"):
            yield _foreign_key(stmt, token, "FOREIGN KEY")
        elif token.is_keyword("REFERENCES"):
            yield _foreign_key(stmt, token, "REFERENCES")
        elif (depth == 0 and token.is_keyword("ENGINE") and nxt is not None
              and (nxt.text == "=" or nxt.type is TokenType.IDENT)):
            yield stmt.refusal(
                token.start, "ENGINE=", "storage engines are MariaDB's; SingleStore chooses "
                "the table type itself", "leave ENGINE= out (a SingleStore table is columnstore "
                "by default; CREATE ROWSTORE TABLE makes an in-memory rowstore)",
                DOCS["create table"])
        elif (token.is_keyword("WITH") and nxt is not None and nxt.is_keyword("SYSTEM")):
            yield stmt.refusal(
                token.start, "WITH SYSTEM VERSIONING", "system-versioned tables are MariaDB's",
                "keep the history in a table of its own (a pipeline can load both)",
                DOCS["create table"])


def _foreign_key(stmt: GateStatement, token: Token, construct: str) -> GateRefusal:
    return stmt.refusal(
        token.start, construct,
        "SingleStore has no foreign keys or referential integrity (MariaDB enforces them, so "
        "the table would behave differently)",
        "leave the constraint out; keep a KEY on the column and check the reference in a query",
        DOCS["unsupported"])

"""Restricted keywords used as bare identifiers, found with sqlglot's SingleStore dialect.

SingleStore restricts far more words than MariaDB reserves (its "List of Restricted Keywords"
holds function names and words like MINUTE, ACTION, ROWS); such a word works as a name only
back-quoted or after a period (``t.minute``). sqlglot's SingleStore dialect carries that list
(``RESERVED_KEYWORDS``) and its parser tells a name from a keyword, which a token scan cannot
(``INTERVAL 15 MINUTE`` is fine, ``SELECT minute`` is not).

The list is stricter than SingleStore's parser in practice: SingleStore's own
``information_schema`` views have columns named STATE, HOST, PORT and PARTITION, and public
monitoring SQL (SingleStore's demos included) selects them unquoted, so those four pass
(:data:`VIEW_COLUMNS`). SingleStore's own "Retrieve Kafka Properties" example creates columns
named offset, partition and timestamp unquoted, all three on the list. So a listed word as a bare
name is a warning, not a refusal: it may fail there, and back-quoting is valid on both databases.
The SQL matchstream ships is held to no warning at all (tests/unit/test_gate_sources.py).

A statement sqlglot cannot parse is not judged here: sqlglot's grammar is looser than
SingleStore's in places and stricter in others, so "sqlglot failed" is no proof of anything.
"""

from __future__ import annotations

import logging

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.generators.singlestore import SingleStoreGenerator

from matchstream.gate.errors import GateRefusal
from matchstream.gate.statement import GateStatement

__all__ = ["RESTRICTED", "VIEW_COLUMNS", "restricted_identifier"]

# Restricted words that are column names of SingleStore's pipeline views (and of the local
# catalog that mirrors them).
VIEW_COLUMNS = frozenset({"state", "host", "port", "partition"})
RESTRICTED: frozenset[str] = frozenset(
    w.lower() for w in SingleStoreGenerator.RESERVED_KEYWORDS) - VIEW_COLUMNS

_DOC = ("https://docs.singlestore.com/db/v9.1/reference/sql-reference/restricted-keywords/"
        "list-of-restricted-keywords/")
# Statements whose names are checked; SET/SHOW/USE take words that are not names
# (SET GLOBAL x = ON parses ON as a column).
_CHECKED = (exp.Query, exp.Create, exp.Insert, exp.Update, exp.Delete, exp.Alter)


def restricted_identifier(stmt: GateStatement) -> GateRefusal | None:
    """The first restricted keyword ``stmt`` uses as a bare name, or None (a warning to show,
    in the shape of a refusal: location, construct, alternative, page)."""
    try:
        # sqlglot logs a warning for every statement it falls back to a Command for.
        logging.getLogger("sqlglot").disabled = True
        trees = sqlglot.parse(stmt.text, read="singlestore")
    except SqlglotError:
        return None
    finally:
        logging.getLogger("sqlglot").disabled = False
    found: list[tuple[int, str]] = []
    for tree in trees:
        if not isinstance(tree, _CHECKED):
            continue
        if isinstance(tree, exp.Create) and str(tree.args.get("kind") or "").upper() in (
                "PROCEDURE", "FUNCTION", "AGGREGATE"):
            continue  # sqlglot does not parse SingleStore's procedural bodies
        for ident in tree.find_all(exp.Identifier):
            start = ident.meta.get("start")
            if ident.quoted or start is None or ident.name.lower() not in RESTRICTED:
                continue
            if stmt.text[:start].rstrip().endswith("."):
                continue  # "words following periods are always considered identifiers"
            if stmt.text[int(start) + len(ident.name):].lstrip().startswith("."):
                continue  # a qualifier: SingleStore's own demos write pipelines.database_name
            if (ident.name.upper() in ("SHARD", "SORT")
                    and stmt.text[int(start) + len(ident.name):].lstrip()[:3].upper() == "KEY"):
                continue  # SingleStore's SHARD KEY / SORT KEY, which sqlglot reads as a column
            found.append((int(start), ident.name))
    if not found:
        return None
    start, name = min(found)
    return stmt.refusal(
        start, f"restricted keyword {name!r} as a name",
        f"{name.upper()} is on SingleStore's List of Restricted Keywords, which may refuse it as a "
        "bare identifier there", f"back-quote it: `{name}`", _DOC)

"""Checks for the container path's certain failures (audit 2026-12, section 1), as plain functions
so each has a test on the real files and a test that it catches the mistake it is there for.

* :func:`mariadb_only_constructs`: SQL SingleStore rejects that MariaDB runs (``CREATE OR REPLACE
  VIEW`` first of all). A narrow regex, not the full SingleStore gate: it looks only for the
  constructs the audit found or listed.
* :func:`unquoted_restricted_words`: identifiers that are SingleStore restricted keywords and not
  back-quoted, with sqlglot's copy of SingleStore's "List of Restricted Keywords".
* :func:`passwords_on_command_lines`: a MySQL-family client given its password as an argument.
* :func:`published_ports_not_loopback`: compose ports published on every interface.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from matchstream.ddl import split_statements
from matchstream.ddl.script import is_select_into_kafka
from tests.docker.layout import interpolation_default


@dataclass(frozen=True)
class Finding:
    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


# Comments and string literals hide nothing from SingleStore's parser but must not trigger these
# checks; back-quoted identifiers are kept (a view may be called `engine`).
_NOISE = re.compile(
    r"--[^\n]*|#[^\n]*|/\*.*?\*/|'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.)*\"", re.S
)

# What MariaDB runs and SingleStore rejects, with the SingleStore way to write it.
_MARIADB_ONLY = (
    (re.compile(r"\bCREATE\s+OR\s+REPLACE\s+(?:(?:ALGORITHM|DEFINER|SQL\s+SECURITY)\b[^;]*?)?"
                r"(VIEW|TABLE|TRIGGER|DATABASE|SCHEMA|INDEX|SEQUENCE|USER|ROLE)\b", re.I),
     "CREATE OR REPLACE {0}: SingleStore has no OR REPLACE here; use DROP {0} IF EXISTS, then "
     "CREATE {0} (ALTER VIEW for a view)"),
    (re.compile(r"\bENGINE\s*=", re.I),
     "ENGINE=: SingleStore has no storage engines; leave it out (rowstore: CREATE ROWSTORE TABLE)"),
    (re.compile(r"\bCREATE\s+(?:DEFINER\s*=\s*\S+\s+)?TRIGGER\b", re.I),
     "CREATE TRIGGER: SingleStore has no triggers; use a pipeline's SET/WHERE or a procedure"),
    # One finding per constraint: FOREIGN KEY ... REFERENCES, or a column's inline REFERENCES.
    (re.compile(r"\bFOREIGN\s+KEY\b[^;]*?\bREFERENCES\b|\bREFERENCES\s+`?\w", re.I),
     "FOREIGN KEY: SingleStore does not enforce foreign keys; leave the constraint out"),
)


def strip_noise(sql: str) -> str:
    """``sql`` with comments and string literals blanked (same length, so offsets still hold).

    >>> strip_noise("SELECT 'CREATE OR REPLACE VIEW' -- ENGINE=x")
    'SELECT                                         '
    """
    return _NOISE.sub(lambda m: " " * len(m.group(0)), sql)


def mariadb_only_constructs(sql: str, source: str) -> list[Finding]:
    """Every construct of ``_MARIADB_ONLY`` in ``sql``, as ``source:line:col``."""
    findings = []
    for stmt in split_statements(sql, source):
        code = strip_noise(stmt.text)
        for pattern, advice in _MARIADB_ONLY:
            for match in pattern.finditer(code):
                before = stmt.text[: match.start()]
                line = stmt.line + before.count("\n")
                if "\n" in before:
                    col = len(before) - before.rfind("\n")
                else:
                    col = stmt.col + len(before)
                word = match.group(1).upper() if match.groups() else ""
                findings.append(Finding(f"{source}:{line}:{col}", advice.format(word)))
    return findings


def _restricted() -> frozenset[str]:
    import sqlglot  # noqa: F401 - the generator module needs the package imported first
    from sqlglot.generators.singlestore import SingleStoreGenerator

    return frozenset(w.lower() for w in SingleStoreGenerator.RESERVED_KEYWORDS)


_INTO_KAFKA = re.compile(r"\bINTO\s+KAFKA\b", re.I)


def unquoted_restricted_words(sql: str, source: str) -> list[Finding]:
    """Identifiers (columns, tables, aliases) that SingleStore restricts and that are not
    back-quoted. Every statement must parse in sqlglot's SingleStore dialect."""
    import sqlglot
    from sqlglot import exp

    restricted = _restricted()
    findings = []
    for stmt in split_statements(sql, source):
        text = stmt.text
        # Nor SELECT ... INTO KAFKA (a pipeline statement to matchstream too): check the SELECT
        # before INTO KAFKA, the part that names columns.
        into_kafka = _INTO_KAFKA.search(strip_noise(text)) if is_select_into_kafka(text) else None
        if into_kafka:
            text = text[: into_kafka.start()]
        elif stmt.is_pipeline:  # sqlglot has no pipeline grammar; matchstream's parser checks it
            continue
        tree = sqlglot.parse_one(text, read="singlestore")
        for ident in tree.find_all(exp.Identifier):
            if not ident.quoted and ident.name.lower() in restricted:
                findings.append(Finding(stmt.location, f"{ident.name} is a SingleStore "
                                        f"restricted word: write `{ident.name}`"))
    return findings


_CLIENT = re.compile(r"\b(?:singlestore|mysql|mariadb|memsql)\b")
_PASSWORD_ARG = re.compile(r"(?<![\w-])(?:-p(?=[\"'$\w{])|--password(?:=|\s+[\"'$\w]))")


def passwords_on_command_lines(text: str, source: str) -> list[Finding]:
    """Lines (continuations joined) that run a MySQL-family client with ``-pSECRET`` or
    ``--password=SECRET``: visible to every user in ``ps``. A bare ``-p`` (prompt) is fine."""
    findings = []
    joined = text.replace("\\\n", " ")
    for number, line in enumerate(joined.splitlines(), 1):
        if _CLIENT.search(line) and _PASSWORD_ARG.search(line):
            findings.append(Finding(f"{source}:{number}", f"password on a command line: "
                                    f"{line.strip()[:120]}"))
    return findings


def published_ports_not_loopback(compose: dict[str, Any]) -> list[Finding]:
    """Published ports whose host address (its default, for ``${VAR:-default}``) is not
    127.0.0.1: Docker's published ports bypass the host firewall."""
    findings = []
    for name, service in compose.get("services", {}).items():
        for entry in service.get("ports", []):
            if isinstance(entry, dict):
                host_ip = entry.get("host_ip", "")
                text = str(entry)
            else:
                text = interpolation_default(str(entry))
                parts = text.split(":")
                host_ip = parts[0] if len(parts) == 3 else ""
            if interpolation_default(str(host_ip)) != "127.0.0.1":
                findings.append(Finding(f"compose.yaml services.{name}.ports",
                                        f"{entry!r} is published on every interface ({text})"))
    return findings

"""Every SQL text the project ships or sends passes the SingleStore gate without a refusal:
the files in sql/ and sql/queries/, and the SQL strings the package and the scripts execute.

The strings are collected from the code: the first argument of every ``<cursor>.execute(...)``
and of any other call whose first argument starts with an upper-case SQL verb (the demo's
``rows("SELECT ...")`` helpers), when it is a literal, an f-string or a sum of those and module
constants; an f-string's ``{...}`` becomes a plain name and ``%s`` a NULL, which is what they
stand for. Left out on purpose: the engine, the
stack and the DDL parser (matchstream/engine, stack, ddl), which talk to the local MariaDB about
the local catalog and never run on SingleStore.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from matchstream.ddl.script import is_pipeline_statement, split_statements
from matchstream.gate import check_statement

REPO = Path(__file__).resolve().parents[2]
SQL_FILES = sorted((REPO / "sql").glob("*.sql")) + sorted((REPO / "sql" / "queries").glob("*.sql"))
LOCAL_ONLY = ("engine", "stack", "ddl")
CODE_FILES = sorted(
    [p for p in (REPO / "matchstream").rglob("*.py")
     if p.relative_to(REPO / "matchstream").parts[0] not in LOCAL_ONLY]
    + list((REPO / "scripts").glob("*.py")))


_SQL_VERB = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER|SHOW|USE|SET)"
                       r"\s")


def _constants(tree: ast.Module) -> dict[str, str]:
    out: dict[str, str] = {}
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)):
            text = _text(node.value, out)
            if text is not None:
                out[node.targets[0].id] = text
    return out


def _text(node: ast.expr, constants: dict[str, str]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            else:
                parts.append("placeholder_name")
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _text(node.left, constants), _text(node.right, constants)
        return None if left is None or right is None else left + right
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    return None


def collect_sql_strings() -> list[tuple[str, str]]:
    """``(file:line, SQL text)`` of every executed SQL string found in CODE_FILES."""
    found = []
    for path in CODE_FILES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        constants = _constants(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and node.args):
                continue
            text = _text(node.args[0], constants)
            executes = isinstance(node.func, ast.Attribute) and node.func.attr == "execute"
            if text is None or not (executes or _SQL_VERB.match(text)):
                continue
            where = f"{path.relative_to(REPO)}:{node.lineno}"
            found.append((where, text.replace("%s", "NULL")))
    return found


SQL_STRINGS = collect_sql_strings()


def test_the_collector_finds_the_known_senders() -> None:
    senders = {where.split(":")[0] for where, _ in SQL_STRINGS}
    assert {"matchstream/pipeline_status.py", "matchstream/model_command.py", "matchstream/demo.py",
            "scripts/soak_learning.py", "scripts/bench_scoring.py"} <= senders
    assert len(SQL_STRINGS) > 40


@pytest.mark.parametrize("path", SQL_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_shipped_sql_files_pass_the_gate(path: Path) -> None:
    statements = split_statements(path.read_text(encoding="utf-8"), str(path))
    checked = 0
    for stmt in statements:
        if stmt.is_pipeline:
            continue
        verdict = check_statement(stmt.text, source=stmt.source_name, line=stmt.line,
                                  col=stmt.col)
        assert not getattr(verdict, "warnings", ()), verdict  # shipped SQL: not even a warning
        checked += 1
    assert checked or path.name == "10_pipelines.sql"


def test_no_shipped_query_needs_a_placeholder() -> None:
    for path in sorted((REPO / "sql" / "queries").glob("*.sql")):
        assert "${" not in path.read_text(encoding="utf-8"), path


@pytest.mark.parametrize(("where", "text"), SQL_STRINGS, ids=[w for w, _ in SQL_STRINGS])
def test_sql_strings_of_the_package_and_scripts_pass_the_gate(where: str, text: str) -> None:
    for stmt in split_statements(text, where):
        if not is_pipeline_statement(stmt.text):
            verdict = check_statement(stmt.text, source=where, line=stmt.line, col=stmt.col)
            assert not getattr(verdict, "warnings", ()), verdict

"""Every pipeline statement shipped in sql/*.sql parses (after placeholder substitution)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from matchstream.ddl import parse_statement, placeholders_in, prepare_script

SQL_DIR = Path(__file__).resolve().parents[3] / "sql"
SQL_FILES = sorted(SQL_DIR.glob("**/*.sql"))

# Placeholders get dummy values that pass the parser's checks: a number where the name says it
# is one, a plain word elsewhere (a host, a topic, a directory inside a file:// URI).
_NUMERIC = re.compile(r"PORT|INTERVAL|LIMIT|MAX|RETRIES|OFFSETS|PARTITIONS|BATCHES|_MS$|_N$")


def dummy_variables(text: str) -> dict[str, str]:
    return {name: ("1" if _NUMERIC.search(name) else "dummy") for name in placeholders_in(text)}


def test_the_shipped_sql_is_found():
    names = {str(p.relative_to(SQL_DIR)) for p in SQL_FILES}
    assert {"00_schema.sql", "10_pipelines.sql", "20_views.sql"} <= names, names
    assert any(n.startswith("queries/") for n in names), names


@pytest.mark.parametrize("path", SQL_FILES, ids=lambda p: str(p.relative_to(SQL_DIR)))
def test_sql_file_pipeline_statements_parse(path):
    text = path.read_text()
    source = str(path.relative_to(SQL_DIR.parent))
    statements = prepare_script(text, source, dummy_variables(text))
    pipeline = [s for s in statements if s.is_pipeline]
    for stmt in pipeline:
        parse_statement(stmt.text, line=stmt.line, col=stmt.col, source=source)
    if path.name == "10_pipelines.sql":
        assert pipeline, f"{source} holds no pipeline statement"

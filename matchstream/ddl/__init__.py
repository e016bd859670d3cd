"""Pipeline statements: parse SingleStore's pipeline DDL, render it back, split SQL scripts.

>>> stmt = parse_statement("START PIPELINE p FOREGROUND LIMIT 1 BATCHES")
>>> stmt.limit_batches
1
>>> render(stmt)
'START PIPELINE `p` FOREGROUND LIMIT 1 BATCHES'
"""

from __future__ import annotations

from matchstream.ddl import ast
from matchstream.ddl.ast import Statement
from matchstream.ddl.errors import DdlError, DdlSyntaxError, ScriptError, UnsupportedByLocalEngine
from matchstream.ddl.parser import parse_statement
from matchstream.ddl.render import render, show_create
from matchstream.ddl.script import (
    ScriptStatement,
    is_pipeline_statement,
    placeholders_in,
    prepare_script,
    split_statements,
    substitute,
)

__all__ = [
    "DdlError",
    "DdlSyntaxError",
    "ScriptError",
    "ScriptStatement",
    "Statement",
    "UnsupportedByLocalEngine",
    "ast",
    "is_pipeline_statement",
    "parse_statement",
    "placeholders_in",
    "prepare_script",
    "render",
    "show_create",
    "split_statements",
    "substitute",
]

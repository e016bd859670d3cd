"""SQL scripts: split into statements, recognise pipeline statements, substitute ``${NAME}``.

Splitting uses the same lexer as the parser, so a ``;`` inside a string, a backquoted identifier
or a comment never ends a statement, and every statement knows the file line and column it starts
at. There is no ``DELIMITER`` support: compound statements (``BEGIN ... END`` bodies with inner
``;``) cannot be split and are out of scope for ``sql/`` scripts.

Recommended order, which :func:`prepare_script` implements: split first, then substitute each
statement. A value containing ``;`` or quotes then cannot change where statements end, and every
position before the first placeholder on a line stays exact.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from matchstream.ddl.errors import DdlError, ScriptError
from matchstream.ddl.tokens import SourceMap, Token, TokenType, tokenize

__all__ = [
    "PLACEHOLDER_RE",
    "ScriptStatement",
    "is_pipeline_statement",
    "is_select_into_kafka",
    "placeholders_in",
    "prepare_script",
    "split_statements",
    "substitute",
]

# ${NAME} is the placeholder; $${ is a literal "${" so a script can still contain one.
PLACEHOLDER_RE = re.compile(r"\$\$\{|\$\{(?:([A-Za-z_][A-Za-z0-9_]*)\})?")


@dataclass(frozen=True)
class ScriptStatement:
    """One statement of a script: text without the ``;``, and where it starts in the file."""

    text: str
    line: int
    col: int
    source_name: str = "<string>"

    @property
    def is_pipeline(self) -> bool:
        return is_pipeline_statement(self.text)

    @property
    def location(self) -> str:
        return f"{self.source_name}:{self.line}:{self.col}"


def _script_error(exc: DdlError) -> ScriptError:
    return ScriptError(
        exc.reason, exc.line, exc.col, exc.snippet, source=exc.source, context=exc.context
    )


def split_statements(text: str, source_name: str = "<string>") -> list[ScriptStatement]:
    """Split ``text`` on top-level ``;``. Statements that are only comments or blank are dropped;
    comments between statements are dropped, comments inside one are kept verbatim.

    Raises ScriptError (file:line:col) on an unterminated string, identifier or comment.

    >>> [(s.text, s.line, s.col) for s in split_statements("USE ml; -- x\\nSELECT ';';")]
    [('USE ml', 1, 1), ("SELECT ';'", 2, 1)]
    """
    statements: list[ScriptStatement] = []
    first: Token | None = None
    last: Token | None = None
    try:
        for token in tokenize(text, source=source_name):
            if token.type is TokenType.EOF or (token.type is TokenType.OP and token.value == ";"):
                if first is not None and last is not None:
                    statements.append(
                        ScriptStatement(
                            text[first.start : last.end], first.line, first.col, source_name
                        )
                    )
                first = last = None
                continue
            first = first or token
            last = token
    except DdlError as exc:
        raise _script_error(exc) from exc
    return statements


# The leading keywords of every statement the pipeline parser handles, including the ones it
# rejects as unsupported: those must reach the parser for a clear error instead of going to
# MariaDB, which would answer with a bare syntax error.
_PIPELINE_PREFIXES: tuple[tuple[str, ...], ...] = (
    ("CREATE", "PIPELINE"),
    ("CREATE", "AGGREGATOR", "PIPELINE"),
    ("CREATE", "OR", "REPLACE", "PIPELINE"),
    ("CREATE", "OR", "REPLACE", "AGGREGATOR", "PIPELINE"),
    ("START", "PIPELINE"),
    ("START", "ALL", "PIPELINES"),
    ("START", "FAILED", "PIPELINES"),
    ("STOP", "PIPELINE"),
    ("STOP", "ALL", "PIPELINES"),
    ("DROP", "PIPELINE"),
    ("ALTER", "PIPELINE"),
    ("TEST", "PIPELINE"),
    ("EXTRACT", "PIPELINE"),
    ("PROFILE", "PIPELINE"),
    ("DETACH", "PIPELINE"),
    ("SHOW", "PIPELINES"),
    ("SHOW", "CREATE", "PIPELINE"),
    ("SHOW", "PROFILE", "PIPELINE"),
    ("SHOW", "PROFILE", "JSON", "PIPELINE"),
    ("SHOW", "PROFILE", "UI", "PIPELINE"),
    ("CLEAR", "PIPELINE", "ERRORS"),
)
_PREFIX_LEN = max(len(p) for p in _PIPELINE_PREFIXES)


def is_pipeline_statement(text: str) -> bool:
    """True if ``text`` is a pipeline statement (for the local engine), False for ordinary SQL
    (for the database). Looks only at the leading keywords, so it never raises.

    >>> is_pipeline_statement("/* go */ create or replace pipeline p as load data kafka 'h/t'")
    True
    >>> is_pipeline_statement("CREATE OR REPLACE TABLE pipeline (id INT)")
    False
    """
    words: list[str] = []
    try:
        for token in tokenize(text):
            if token.type is not TokenType.IDENT or len(words) == _PREFIX_LEN:
                break
            words.append(token.value.upper())
    except DdlError:
        pass  # an unterminated literal later on: the leading words are all we need
    if any(tuple(words[: len(prefix)]) == prefix for prefix in _PIPELINE_PREFIXES):
        return True
    return is_select_into_kafka(text)


def is_select_into_kafka(text: str) -> bool:
    """True for a query (``SELECT``, ``WITH``, ``(``) with ``INTO KAFKA`` outside parentheses:
    SingleStore's egress statement, which MariaDB does not know.

    >>> is_select_into_kafka("SELECT id FROM t WHERE note = 'into kafka' INTO KAFKA 'h/alerts'")
    True
    >>> is_select_into_kafka("SELECT (SELECT 1 INTO KAFKA 'h/t') FROM t")
    False
    """
    depth = 0
    previous: Token | None = None
    try:
        for index, token in enumerate(tokenize(text)):
            if token.type is TokenType.EOF:
                return False
            if index == 0 and not (token.is_keyword("SELECT", "WITH") or (
                    token.type is TokenType.OP and token.value == "(")):
                return False
            if token.type is TokenType.OP and token.value in "()":
                depth += 1 if token.value == "(" else -1
            elif (depth == 0 and token.is_keyword("KAFKA") and previous is not None
                  and previous.is_keyword("INTO")):
                return True
            previous = token
    except DdlError:
        return False  # unterminated: let the database report it
    return False


def placeholders_in(text: str) -> list[str]:
    """Names of the ``${NAME}`` placeholders in ``text`` (outside comments), in order."""
    return [m.group(1) for m in _iter_placeholders(text) if m.group(1)]


def _code_spans(text: str) -> list[tuple[int, int]]:
    """Spans of ``text`` outside comments, each a run of tokens with nothing between them.
    A placeholder never contains whitespace, so it lies inside one span; comments lie outside
    every span and are never substituted (a commented-out line may name an unset variable)."""
    spans: list[tuple[int, int]] = []
    for token in tokenize(text):
        if token.type is TokenType.EOF:
            break
        if spans and spans[-1][1] == token.start:
            spans[-1] = (spans[-1][0], token.end)
        else:
            spans.append((token.start, token.end))
    return spans


def _iter_placeholders(text: str) -> list[re.Match[str]]:
    try:
        spans = _code_spans(text)
    except DdlError:
        spans = [(0, len(text))]
    return [m for start, end in spans for m in PLACEHOLDER_RE.finditer(text, start, end)]


def substitute(
    text: str,
    variables: Mapping[str, str],
    source_name: str = "<string>",
    *,
    line: int = 1,
    col: int = 1,
) -> str:
    """Replace every ``${NAME}`` outside comments with ``variables[NAME]``, verbatim.

    Values are inserted as raw text, not quoted or escaped: ``'${DIR}/x.py'`` needs a value
    without quotes or backslashes. ``$${`` yields a literal ``${``. ``line``/``col`` say where
    ``text`` starts in the file ``source_name``.

    Raises:
        ScriptError: an unknown NAME or a ``${`` that is not a placeholder, at file:line:col.

    >>> substitute("KAFKA '${BROKER}/t' -- ${NOT_SET}", {"BROKER": "localhost:9092"})
    "KAFKA 'localhost:9092/t' -- ${NOT_SET}"
    """
    source_map = SourceMap(text, line, col, source_name)
    matches = _iter_placeholders(text)
    out: list[str] = []
    pos = 0
    for match in matches:
        out.append(text[pos : match.start()])
        pos = match.end()
        name = match.group(1)
        if match.group(0) == "$${":
            out.append("${")
        elif name is None:
            raise _placeholder_error(
                source_map, "malformed placeholder; write ${NAME} or $${ for a literal", match
            )
        elif name not in variables:
            raise _placeholder_error(
                source_map, f"unknown placeholder ${{{name}}}; pass --var {name}=VALUE", match
            )
        else:
            out.append(variables[name])
    out.append(text[pos:])
    return "".join(out)


def _placeholder_error(source_map: SourceMap, reason: str, match: re.Match[str]) -> ScriptError:
    snippet = match.string[match.start() : match.start() + 40].split("\n", 1)[0]
    error = source_map.error(reason, match.start(), snippet, ScriptError)
    assert isinstance(error, ScriptError)
    return error


def prepare_script(
    text: str, source_name: str = "<string>", variables: Mapping[str, str] | None = None
) -> list[ScriptStatement]:
    """Split ``text`` and substitute placeholders in each statement, keeping file positions.

    This is what ``matchstream sql`` runs on each file, ``-e`` string or stdin.
    """
    variables = variables or {}
    return [
        replace(
            stmt,
            text=substitute(stmt.text, variables, source_name, line=stmt.line, col=stmt.col),
        )
        for stmt in split_statements(text, source_name)
    ]

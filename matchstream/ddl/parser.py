"""Recursive-descent parser for the pipeline statements (grammar: docs/pipeline-grammar.md).

Habits borrowed from sqlglot: positioned tokens, ``_match``/``_expect`` helpers, statement and
clause dispatch through class-level tables, and errors that carry line, column and the offending
text. The clause tables list SingleStore's documented clause order; a clause written out of that
order is an error naming the clause it must precede, so a statement accepted here is in an order
SingleStore documents.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from matchstream.ddl import ast, set_clause
from matchstream.ddl.errors import DdlError, UnsupportedByLocalEngine
from matchstream.ddl.tokens import SourceMap, Token, TokenType, tokenize

__all__ = ["Parser", "parse_statement"]

_NOT_LOCAL = "not supported by the local engine"

# Kafka's legal topic characters and length limit; anything else fails later at the broker with a
# far less helpful message.
_TOPIC_RE = re.compile(r"[A-Za-z0-9._-]{1,249}")
_HOST_RE = re.compile(r"\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+")

# MySQL reserved words that can start or continue these statements; unquoted they are never a
# name, so "DROP PIPELINE IF p" fails at IF rather than at p.
_RESERVED = frozenset(
    "AS BY FROM IF IGNORE INTO LIMIT LINES LOAD NULL ON REPLACE SELECT SET TABLE WHERE WITH".split()
)

# Sources SingleStore can LOAD DATA from that the local engine cannot.
_OTHER_SOURCES = ("S3", "FS", "HDFS", "AZURE", "GCS", "LINK", "MONGODB", "MYSQL", "ICEBERG")


@dataclass(frozen=True)
class _Clause:
    """One optional clause in a fixed-order section of CREATE PIPELINE."""

    name: str  # as the user would write it, for error messages
    starts: tuple[str, ...]  # keywords that may open it
    parse: Callable[[Parser, dict[str, Any], Token], None]


class Parser:
    """Parses one statement from its token list. Use :func:`parse_statement`."""

    STATEMENT_PARSERS: ClassVar[dict[str, Callable[[Parser], ast.Statement]]] = {}
    CREATE_SOURCE_CLAUSES: ClassVar[tuple[_Clause, ...]] = ()
    INTO_KAFKA_CLAUSES: ClassVar[tuple[_Clause, ...]] = ()
    CREATE_TARGET_CLAUSES: ClassVar[tuple[_Clause, ...]] = ()
    ALTER_SET_PARSERS: ClassVar[dict[str, Callable[[Parser], ast.AlterAction]]] = {}

    # Clauses and statements SingleStore has and the local engine rejects, keyed by the keyword
    # that opens them; the value names the feature in the error.
    UNSUPPORTED_STATEMENTS: ClassVar[dict[str, str]] = {
        "PROFILE": "PROFILE PIPELINE",
        "DETACH": "DETACH PIPELINE",
    }
    UNSUPPORTED_SOURCE_CLAUSES: ClassVar[dict[str, str]] = {
        "RESOURCE": "RESOURCE POOL",
        "ENABLE": "ENABLE OUT_OF_ORDER OPTIMIZATION",
        "DISABLE": "DISABLE OUT_OF_ORDER OPTIMIZATION",
        "KAFKA": "KAFKA KEY",
    }
    UNSUPPORTED_TARGET_CLAUSES: ClassVar[dict[str, str]] = {
        "FORMAT": "FORMAT",
        "ON": "ON DUPLICATE KEY UPDATE",
    }
    UNSUPPORTED_INTO_KAFKA_CLAUSES: ClassVar[dict[str, str]] = {
        "FORMAT": "FORMAT in SELECT ... INTO KAFKA (messages are delimited text; build JSON in "
        "the select list)",
        "WITH": "WITH COMPRESSION in SELECT ... INTO KAFKA",
        "CHARACTER": "CHARACTER SET in SELECT ... INTO KAFKA",
        "CHARSET": "CHARACTER SET in SELECT ... INTO KAFKA",
    }
    UNSUPPORTED_ALTER: ClassVar[dict[str, str]] = {
        "ENABLE": "ALTER PIPELINE ... ENABLE",
        "DISABLE": "ALTER PIPELINE ... DISABLE",
        "DROP": "ALTER PIPELINE ... DROP",
        "FIELDS": "ALTER PIPELINE ... FIELDS",
        "COLUMNS": "ALTER PIPELINE ... COLUMNS",
        "LINES": "ALTER PIPELINE ... LINES",
        "RESOURCE": "ALTER PIPELINE ... SET RESOURCE POOL",
        "OFFSET": "ALTER PIPELINE ... SET OFFSET CURSOR",
        "LINK": "ALTER PIPELINE ... SET LINK",
    }

    def __init__(self, tokens: list[Token], source_map: SourceMap) -> None:
        self._tokens = tokens
        self._i = 0
        self._map = source_map

    # ------------------------------------------------------------------ token helpers

    @property
    def _curr(self) -> Token:
        return self._tokens[self._i]

    def _peek(self, ahead: int = 1) -> Token:
        return self._tokens[min(self._i + ahead, len(self._tokens) - 1)]

    def _advance(self) -> Token:
        token = self._tokens[self._i]
        if token.type is not TokenType.EOF:
            self._i += 1
        return token

    def _at_end(self) -> bool:
        return self._curr.type is TokenType.EOF or (
            self._curr.type is TokenType.OP and self._curr.value == ";"
        )

    def _check(self, *words: str) -> bool:
        return all(self._peek(k).is_keyword(word) for k, word in enumerate(words))

    def _match(self, *words: str) -> Token | None:
        """Consume the keyword sequence if it is next (all or nothing)."""
        if not self._check(*words):
            return None
        first = self._curr
        for _ in words:
            self._advance()
        return first

    def _match_op(self, op: str) -> Token | None:
        if self._curr.type is TokenType.OP and self._curr.value == op:
            return self._advance()
        return None

    def _expect(self, *words: str) -> Token:
        first = self._curr
        for word in words:
            if not self._curr.is_keyword(word):
                raise self._error(f"expected {' '.join(words)}", self._curr)
            self._advance()
        return first

    def _expect_op(self, op: str) -> Token:
        token = self._match_op(op)
        if token is None:
            raise self._error(f"expected '{op}'", self._curr)
        return token

    def _expect_name(self, what: str, *, qualifier_of: str | None = None) -> str:
        """An identifier, plain or backquoted. A ``db.name`` qualifier is rejected, except in a
        column list where ``table.col`` may qualify with the target table (as SHOW CREATE
        PIPELINE prints it); ``qualifier_of`` is that table."""
        token = self._curr
        if token.type not in (TokenType.IDENT, TokenType.QUOTED_IDENT) or (
            token.type is TokenType.IDENT and token.value.upper() in _RESERVED
        ):
            raise self._error(f"expected {what}", token)
        if not token.value:
            raise self._error(f"{what} must not be empty", token)
        self._advance()
        if not (self._curr.type is TokenType.OP and self._curr.value == "."):
            return token.value
        dot = self._advance()
        inner = self._curr
        if inner.type not in (TokenType.IDENT, TokenType.QUOTED_IDENT) or not inner.value:
            raise self._error(f"expected {what} after '.'", inner)
        self._advance()
        if qualifier_of is None:
            raise self._unsupported(
                f"a qualified {what} ({token.text}.{inner.text})",
                token,
                "; USE the database first",
            )
        if token.value != qualifier_of:
            raise self._error(
                f"{what} is qualified with {token.text}{dot.text}, not the target table "
                f"`{qualifier_of}`",
                token,
            )
        return inner.value

    def _expect_string(self, what: str) -> Token:
        token = self._curr
        if token.type is not TokenType.STRING:
            raise self._error(f"expected {what} as a quoted string", token)
        return self._advance()

    def _expect_uint(self, what: str, *, minimum: int = 0) -> int:
        token = self._curr
        if token.type is not TokenType.NUMBER or not token.text.isdigit():
            raise self._error(f"expected {what} as an unsigned integer", token)
        self._advance()
        value = int(token.text)
        if value < minimum:
            raise self._error(f"{what} must be at least {minimum}", token)
        return value

    def _error(self, reason: str, token: Token) -> DdlError:
        if token.type is TokenType.EOF:
            reason = f"{reason}, found the end of the statement"
        return self._map.error(reason, token.start, token.text)

    def _error_inside(self, reason: str, token: Token, index: int) -> DdlError:
        """An error at character ``index`` of a string literal's value, when the literal has no
        escapes (so value and source line up); otherwise at the literal."""
        offset = token.start
        if token.text[1:-1] == token.value and 0 <= index <= len(token.value):
            offset = token.start + 1 + index
        end = self._map.text.find("\n", offset)
        snippet = self._map.text[offset : min(token.end, end if end >= 0 else token.end)]
        return self._map.error(reason, offset, snippet or token.text)

    def _unsupported(self, what: str, token: Token, hint: str = "") -> DdlError:
        return self._map.error(
            f"{what} is {_NOT_LOCAL}{hint}", token.start, token.text, UnsupportedByLocalEngine
        )

    # ------------------------------------------------------------------ entry

    def parse(self) -> ast.Statement:
        token = self._curr
        if self._at_end():
            raise self._error("empty statement", token)
        word = token.value.upper() if token.type is TokenType.IDENT else ""
        if token.type is TokenType.OP and token.value == "(":
            word = "SELECT"  # (SELECT ...) UNION (...) INTO KAFKA ...
        if word in self.UNSUPPORTED_STATEMENTS:
            raise self._unsupported(self.UNSUPPORTED_STATEMENTS[word], token)
        parser = self.STATEMENT_PARSERS.get(word)
        if parser is None:
            raise self._error("not a pipeline statement", token)
        statement = parser(self)
        self._match_op(";")
        if self._curr.type is not TokenType.EOF:
            raise self._error("unexpected text after the end of the statement", self._curr)
        return statement

    # ------------------------------------------------------------------ CREATE PIPELINE

    def _parse_create(self) -> ast.CreatePipeline:
        self._expect("CREATE")
        state: dict[str, Any] = {
            "or_replace": self._match("OR", "REPLACE") is not None,
            "aggregator": self._match("AGGREGATOR") is not None,
        }
        self._expect("PIPELINE")
        state["if_not_exists"] = self._match("IF", "NOT", "EXISTS") is not None
        state["name"] = self._expect_name("pipeline name")
        if self._check("FORCE"):
            raise self._unsupported("CREATE PIPELINE ... FORCE", self._curr)
        self._expect("AS")
        self._expect("LOAD", "DATA")
        state["source"] = self._parse_kafka_source()
        positions: dict[str, Token] = {}
        self._parse_clauses(
            self.CREATE_SOURCE_CLAUSES, self.UNSUPPORTED_SOURCE_CLAUSES, state, positions
        )
        if self._check("INTO", "PROCEDURE"):
            raise self._unsupported("INTO PROCEDURE", self._curr)
        if not self._check("INTO", "TABLE"):
            raise self._error(
                "expected INTO TABLE (or a clause allowed before it: "
                + ", ".join(c.name for c in self.CREATE_SOURCE_CLAUSES if c.name not in positions)
                + ")",
                self._curr,
            )
        self._advance()
        self._advance()
        state["table"] = self._expect_name("table name")
        self._parse_clauses(
            self.CREATE_TARGET_CLAUSES, self.UNSUPPORTED_TARGET_CLAUSES, state, positions
        )
        if not self._at_end():
            raise self._error("unexpected text in CREATE PIPELINE", self._curr)
        self._check_combinations(state, positions)
        return ast.CreatePipeline(**state)

    def _parse_clauses(
        self,
        clauses: tuple[_Clause, ...],
        unsupported: dict[str, str],
        state: dict[str, Any],
        positions: dict[str, Token],
    ) -> None:
        """Parse optional clauses in ``clauses`` order until none matches."""
        last = -1
        while not self._at_end():
            token = self._curr
            word = token.value.upper() if token.type is TokenType.IDENT else None
            if word is None and token.type is TokenType.OP and token.value == "(":
                word = "("
            matching = [i for i, c in enumerate(clauses) if word in c.starts]
            if not matching:
                if word in unsupported:
                    raise self._unsupported(unsupported[word], token)
                return
            later = [i for i in matching if i > last]
            index = later[0] if later else matching[0]
            clause = clauses[index]
            if clause.name in positions:
                raise self._error(f"duplicate {clause.name} clause", token)
            if index < last:
                raise self._error(f"{clause.name} must come before {clauses[last].name}", token)
            clause.parse(self, state, token)
            positions[clause.name] = token
            last = index

    def _check_combinations(self, state: dict[str, Any], positions: dict[str, Token]) -> None:
        """Combinations SingleStore itself rejects (docs §1.5)."""
        handling = state.get("error_handling")
        if state.get("transform") is not None and handling in (
            ast.ErrorHandling.SKIP_PARSER_ERRORS,
            ast.ErrorHandling.SKIP_ALL_ERRORS,
        ):
            raise self._error(
                f"{handling.value} cannot be combined with WITH TRANSFORM (SingleStore rejects it)",
                positions["error handling"],
            )

    def _parse_kafka_source(self) -> ast.KafkaSource:
        token = self._curr
        word = token.value.upper() if token.type is TokenType.IDENT else ""
        if word in _OTHER_SOURCES:
            raise self._unsupported(f"LOAD DATA {word}", token)
        self._expect("KAFKA")
        literal = self._expect_string("the Kafka endpoint 'host[:port][,...]/topic'")
        return self._kafka_endpoint(literal)

    def _kafka_endpoint(self, literal: Token) -> ast.KafkaSource:
        value = literal.value
        form = "'host[:port][,host[:port]...]/topic'"
        for index, ch in enumerate(value):
            if ch.isspace():
                raise self._error_inside(f"whitespace in the Kafka endpoint {form}", literal, index)
        slash = value.find("/")
        if slash < 0:
            raise self._error_inside(f"the Kafka endpoint needs a topic: {form}", literal, 0)
        topic = value[slash + 1 :]
        if not _TOPIC_RE.fullmatch(topic):
            raise self._error_inside(
                "the Kafka topic must be 1-249 characters of A-Z a-z 0-9 . _ -",
                literal,
                slash + 1,
            )
        brokers: list[str] = []
        position = 0
        for broker in value[:slash].split(","):
            self._check_broker(broker, literal, position, form)
            brokers.append(broker)
            position += len(broker) + 1
        return ast.KafkaSource(brokers=tuple(brokers), topic=topic)

    def _check_broker(self, broker: str, literal: Token, position: int, form: str) -> None:
        host_match = _HOST_RE.match(broker)
        if not broker or host_match is None:
            raise self._error_inside(f"expected a broker host in {form}", literal, position)
        rest = broker[host_match.end() :]
        if not rest:
            return
        port = rest[1:]
        if rest[0] != ":" or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise self._error_inside(
                f"expected ':port' (1-65535) after the broker host in {form}",
                literal,
                position + host_match.end(),
            )

    # Clause parsers. Each takes (state, opening token); the opening token is still current.

    @staticmethod
    def _clause_json(key: str) -> Callable[[Parser, dict[str, Any], Token], None]:
        def parse(self: Parser, state: dict[str, Any], opener: Token) -> None:
            self._advance()
            if self._curr.type is TokenType.OP and self._curr.value == "::":
                raise self._unsupported(f"{opener.value.upper()} ::key = 'value'", self._curr)
            state[key] = self._json_object(
                self._expect_string(f"the {opener.value.upper()} JSON object")
            )

        return parse

    def _json_object(self, literal: Token) -> str:
        try:
            loaded = json.loads(literal.value)
        except json.JSONDecodeError as exc:
            raise self._error_inside(f"invalid JSON: {exc.msg}", literal, exc.pos) from exc
        if not isinstance(loaded, dict):
            raise self._error_inside("expected a JSON object", literal, 0)
        return literal.value

    @staticmethod
    def _clause_uint(key: str, minimum: int) -> Callable[[Parser, dict[str, Any], Token], None]:
        def parse(self: Parser, state: dict[str, Any], opener: Token) -> None:
            self._advance()
            state[key] = self._expect_uint(opener.value.upper(), minimum=minimum)

        return parse

    def _parse_retry_options_clause(self, state: dict[str, Any], opener: Token) -> None:
        self._advance()
        state["retry_options"] = self._retry_options()

    def _retry_options(self) -> ast.RetryOptions:
        """``'{"exponential": true, "retry_interval": ms, "max_retry_interval": ms,
        "max_retries": n}'`` ("Pipeline Retry Options"); each key optional, nothing else."""
        if self._curr.type is TokenType.OP and self._curr.value == "::":
            raise self._unsupported("RETRY_OPTIONS ::key = 'value'", self._curr,
                                    "; give the whole JSON object")
        literal = self._expect_string("the RETRY_OPTIONS JSON object")
        loaded = json.loads(self._json_object(literal))
        values: dict[str, Any] = {}
        for key, value in loaded.items():
            at = max(literal.value.find(json.dumps(key)), 0)
            if key not in ast.RetryOptions.KEYS:
                raise self._error_inside(
                    f"unknown RETRY_OPTIONS key {key!r} (SingleStore documents "
                    + ", ".join(ast.RetryOptions.KEYS) + ")", literal, at)
            if key == "exponential":
                if not isinstance(value, bool):
                    raise self._error_inside(
                        f"RETRY_OPTIONS exponential must be true or false, not {value!r}",
                        literal, at)
            elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
                unit = "a number of retries" if key == "max_retries" else "milliseconds"
                raise self._error_inside(
                    f"RETRY_OPTIONS {key} must be a non-negative integer ({unit}), not "
                    f"{json.dumps(value)}", literal, at)
            values[key] = value
        return ast.RetryOptions(**values)

    def _parse_with_transform(self, state: dict[str, Any], opener: Token) -> None:
        self._expect("WITH", "TRANSFORM")
        state["transform"] = self._parse_transform_spec()

    def _parse_transform_spec(self) -> ast.TransformSpec:
        self._expect_op("(")
        uri = self._expect_string("the transform URI")
        parts = [uri.value]
        while len(parts) < 3 and self._match_op(","):
            parts.append(self._expect_string("the transform program/arguments").value)
        self._expect_op(")")
        if not uri.value:
            raise self._error("the transform URI must not be empty", uri)
        spec = ast.TransformSpec(*parts)
        path = uri.value.lower().split("?", 1)[0]
        if path.endswith((".tar.gz", ".tgz")) and not spec.program:
            raise self._error(
                "a .tar.gz/.tgz transform needs the program to run inside it as the second "
                "argument",
                uri,
            )
        return spec

    def _parse_error_handling(self, state: dict[str, Any], opener: Token) -> None:
        if self._match("REPLACE"):
            state["replace"] = True
            return
        if self._match("IGNORE"):
            if self._check("PARSER", "ERRORS"):
                raise self._unsupported("IGNORE PARSER ERRORS", opener)
            state["error_handling"] = ast.ErrorHandling.IGNORE
        else:
            self._expect("SKIP")
            kinds = {
                ("ALL",): ast.ErrorHandling.SKIP_ALL_ERRORS,
                ("CONSTRAINT",): ast.ErrorHandling.SKIP_CONSTRAINT_ERRORS,
                ("DUPLICATE", "KEY"): ast.ErrorHandling.SKIP_DUPLICATE_KEY_ERRORS,
                ("PARSER",): ast.ErrorHandling.SKIP_PARSER_ERRORS,
            }
            for words, kind in kinds.items():
                if self._match(*words):
                    state["error_handling"] = kind
                    break
            else:
                raise self._error(
                    "expected ALL, CONSTRAINT, DUPLICATE KEY or PARSER after SKIP", self._curr
                )
            self._expect("ERRORS")
        # SingleStore allows REPLACE after IGNORE / SKIP ... ERRORS (docs §1.5).
        state["replace"] = self._match("REPLACE") is not None

    def _parse_on_off(self, *, allow_none: bool = False) -> bool | None:
        if self._match("ON"):
            return True
        if self._match("OFF"):
            return False
        if allow_none and self._match("NONE"):
            return None
        raise self._error("expected ON, OFF" + (" or NONE" if allow_none else ""), self._curr)

    def _parse_stop_on_error(self, state: dict[str, Any], opener: Token) -> None:
        self._advance()
        state["stop_on_error"] = self._parse_on_off()

    def _parse_charset(self, state: dict[str, Any], opener: Token) -> None:
        if not (self._match("CHARACTER", "SET") or self._match("CHARSET")):
            raise self._error("expected CHARACTER SET", opener)
        token = self._curr
        if token.type not in (TokenType.IDENT, TokenType.QUOTED_IDENT, TokenType.STRING):
            raise self._error("expected a character set name", token)
        self._advance()
        state["charset"] = token.value

    def _parse_fields(self, state: dict[str, Any], opener: Token) -> None:
        self._advance()
        values: dict[str, Any] = {}
        while True:
            token = self._curr
            if self._match("TERMINATED", "BY"):
                key, value = "terminated_by", self._expect_string("FIELDS TERMINATED BY").value
            elif self._match("OPTIONALLY", "ENCLOSED", "BY") or self._match("ENCLOSED", "BY"):
                values["optionally_enclosed"] = token.is_keyword("OPTIONALLY")
                key, value = "enclosed_by", self._single_char("ENCLOSED BY")
            elif self._match("ESCAPED", "BY"):
                key, value = "escaped_by", self._single_char("ESCAPED BY")
            else:
                break
            if key in values:
                raise self._error(f"duplicate {key.replace('_', ' ').upper()}", token)
            values[key] = value
        if not values:
            raise self._error(
                "expected TERMINATED BY, [OPTIONALLY] ENCLOSED BY or ESCAPED BY", self._curr
            )
        state["fields"] = ast.FieldsOptions(**values)

    def _single_char(self, what: str) -> str:
        token = self._expect_string(what)
        if len(token.value) > 1:
            raise self._error(f"{what} takes one character or ''", token)
        return token.value

    def _parse_lines(self, state: dict[str, Any], opener: Token) -> None:
        self._advance()
        values: dict[str, str] = {}
        while True:
            token = self._curr
            if self._match("STARTING", "BY"):
                key = "starting_by"
            elif self._match("TERMINATED", "BY"):
                key = "terminated_by"
            else:
                break
            if key in values:
                raise self._error(f"duplicate LINES {key.replace('_', ' ').upper()}", token)
            values[key] = self._expect_string(f"LINES {key.replace('_', ' ').upper()}").value
        if not values:
            raise self._error("expected STARTING BY or TERMINATED BY", self._curr)
        state["lines"] = ast.LinesOptions(**values)

    def _parse_trailing_nullcols(self, state: dict[str, Any], opener: Token) -> None:
        self._expect("TRAILING", "NULLCOLS")
        state["trailing_nullcols"] = True

    def _parse_null_defined_by(self, state: dict[str, Any], opener: Token) -> None:
        self._expect("NULL", "DEFINED", "BY")
        value = self._expect_string("NULL DEFINED BY").value
        enclosed = self._match("OPTIONALLY", "ENCLOSED") is not None
        state["null_defined_by"] = ast.NullDefinedBy(value, enclosed)

    def _parse_ignore_lines(self, state: dict[str, Any], opener: Token) -> None:
        self._advance()
        state["ignore_lines"] = self._expect_uint("IGNORE n LINES")
        if not (self._match("LINES") or self._match("ROWS")):
            raise self._error("expected LINES after IGNORE n", self._curr)

    def _parse_column_list(self, state: dict[str, Any], opener: Token) -> None:
        self._expect_op("(")
        items: list[ast.ColumnItem] = []
        while True:
            token = self._curr
            if token.type is TokenType.VARIABLE:
                if token.value.startswith("@"):
                    raise self._error("a system variable cannot receive a field", token)
                self._advance()
                items.append(ast.VarRef(token.value))
            elif token.type is TokenType.OP and token.value == "@":
                self._advance()
                items.append(ast.DiscardField())
            elif token.type in (TokenType.IDENT, TokenType.QUOTED_IDENT):
                items.append(
                    ast.ColumnRef(self._expect_name("column name", qualifier_of=state["table"]))
                )
            else:
                raise self._error("expected a column name, @variable or @", token)
            if self._match_op(")"):
                break
            if not self._match_op(","):
                raise self._error("expected ',' or ')' in the column list", self._curr)
        state["columns"] = tuple(items)

    def _parse_set(self, state: dict[str, Any], opener: Token) -> None:
        """SET is checked here against SingleStore's rules (:mod:`matchstream.ddl.set_clause`),
        so a refusal names the offending token's line and column."""
        self._expect("SET")
        columns = state.get("columns")
        variables = None if columns is None else frozenset(
            c.name for c in columns if isinstance(c, ast.VarRef))
        assignments: list[ast.SetAssignment] = []
        while True:
            column = self._expect_name("column name", qualifier_of=state["table"])
            self._expect_op("=")
            tokens: list[Token] = []
            text = self._expression("SET expression", tokens)
            try:
                set_clause.check(tokens, text, variables=variables,
                                 transform=state.get("transform") is not None)
            except set_clause.ExpressionProblem as problem:
                raise set_clause.positioned(
                    problem, lambda r, t: self._map.error(r, t.start, t.text),
                    lambda r, t: self._map.error(r, t.start, t.text, UnsupportedByLocalEngine),
                ) from None
            assignments.append(ast.SetAssignment(column, text))
            if not self._match_op(","):
                break
        state["set_assignments"] = tuple(assignments)

    def _parse_where(self, state: dict[str, Any], opener: Token) -> None:
        self._expect("WHERE")
        state["where"] = self._expression("WHERE condition")

    def _expression(self, what: str, tokens: list[Token] | None = None) -> str:
        """Verbatim SQL up to the next top-level clause boundary; comments dropped and whitespace
        collapsed so that render/parse round trips are stable. ``tokens`` receives its tokens."""
        depth = 0
        parts: list[str] = []
        start = self._curr
        while not self._at_end():
            token = self._curr
            if depth == 0 and (
                (token.type is TokenType.OP and token.value == ",")
                or token.is_keyword("WHERE")
                or self._check("NULL", "DEFINED")
                or self._check("ON", "DUPLICATE")
            ):
                break
            if token.type is TokenType.OP and token.value == "(":
                depth += 1
            elif token.type is TokenType.OP and token.value == ")":
                if depth == 0:
                    raise self._error(f"unbalanced ')' in the {what}", token)
                depth -= 1
            if token.type is TokenType.EXEC_COMMENT:
                raise self._error(f"executable comments are not allowed in the {what}", token)
            parts.append((" " if parts and token.space_before else "") + token.text)
            if tokens is not None:
                tokens.append(token)
            self._advance()
        if depth:
            raise self._error(f"missing ')' in the {what}", self._curr)
        if not parts:
            raise self._error(f"expected the {what}", start)
        return "".join(parts)

    # ------------------------------------------------------------------ SELECT ... INTO KAFKA

    # Words that continue a query: written after INTO KAFKA, the user put it mid-query.
    _QUERY_WORDS = frozenset(
        "FROM WHERE GROUP HAVING ORDER LIMIT UNION EXCEPT INTERSECT WINDOW FOR".split())

    def _parse_select_into_kafka(self) -> ast.SelectIntoKafka:
        """The query up to the top-level ``INTO KAFKA`` is kept verbatim for the database; only
        ``INTO KAFKA`` and its clauses are parsed. The query itself is checked by the database
        when it runs (with the statement's position)."""
        first = self._curr
        depth = 0
        parts: list[str] = []
        while True:
            token = self._curr
            if self._at_end():
                # No INTO KAFKA at the top level: ordinary SQL, for the database.
                raise self._error("not a pipeline statement", first)
            if depth == 0 and self._check("INTO", "KAFKA"):
                break
            if token.type is TokenType.OP and token.value == "(":
                depth += 1
            elif token.type is TokenType.OP and token.value == ")":
                if depth == 0:
                    raise self._error("unbalanced ')' in the SELECT", token)
                depth -= 1
            elif depth == 0 and token.is_keyword("INTO"):
                raise self._error(
                    "a SELECT ... INTO KAFKA cannot also select INTO a variable or file", token)
            if token.type is TokenType.EXEC_COMMENT:
                raise self._error("executable comments are not allowed in SELECT ... INTO KAFKA",
                                  token)
            parts.append((" " if parts and token.space_before else "") + token.text)
            self._advance()
        self._expect("INTO", "KAFKA")
        literal = self._expect_string("the Kafka endpoint 'host[:port][,...]/topic'")
        state: dict[str, Any] = {
            "select": "".join(parts), "destination": self._kafka_endpoint(literal)}
        positions: dict[str, Token] = {}
        self._parse_clauses(
            self.INTO_KAFKA_CLAUSES, self.UNSUPPORTED_INTO_KAFKA_CLAUSES, state, positions)
        if not self._at_end():
            token = self._curr
            if token.type is TokenType.IDENT and token.value.upper() in self._QUERY_WORDS:
                raise self._error(
                    "INTO KAFKA must end the query: write it after FROM, WHERE, GROUP BY, "
                    "ORDER BY and LIMIT", token)
            raise self._error(
                "unexpected text in SELECT ... INTO KAFKA (expected "
                + ", ".join(c.name for c in self.INTO_KAFKA_CLAUSES if c.name not in positions)
                + ")", token)
        return ast.SelectIntoKafka(**state)

    def _parse_kafka_key(self, state: dict[str, Any], opener: Token) -> None:
        self._expect("KAFKA", "KEY")
        token = self._curr
        # SingleStore's example names the column in double quotes (a string in MySQL's
        # default mode); a plain or backquoted identifier means the same.
        if token.type not in (TokenType.IDENT, TokenType.QUOTED_IDENT, TokenType.STRING) or (
            token.type is TokenType.IDENT and token.value.upper() in _RESERVED
        ):
            raise self._error("expected the KAFKA KEY column name", token)
        if not token.value:
            raise self._error("the KAFKA KEY column name must not be empty", token)
        self._advance()
        line, col = self._map.position(token.start)
        where = f"{line}:{col}"
        state["key_column"] = token.value
        state["key_location"] = f"{self._map.source}:{where}" if self._map.source else where

    # ------------------------------------------------------------------ lifecycle statements

    def _parse_start(self) -> ast.Statement:
        self._expect("START")
        if self._match("ALL", "PIPELINES"):
            return ast.StartAllPipelines()
        if self._check("FAILED", "PIPELINES"):
            raise self._unsupported("START FAILED PIPELINES", self._curr)
        self._expect("PIPELINE")
        if_not_running = self._match("IF", "NOT", "RUNNING") is not None
        name = self._expect_name("pipeline name")
        foreground = self._match("FOREGROUND") is not None
        limit = None
        if foreground and self._match("LIMIT"):
            limit = self._expect_uint("LIMIT n BATCHES", minimum=1)
            self._expect("BATCHES")
        return ast.StartPipeline(name, if_not_running, foreground, limit)

    def _parse_stop(self) -> ast.Statement:
        self._expect("STOP")
        if self._match("ALL", "PIPELINES"):
            return ast.StopAllPipelines()
        self._expect("PIPELINE")
        if_running = self._match("IF", "RUNNING") is not None
        name = self._expect_name("pipeline name")
        if self._check("DETACH"):
            raise self._unsupported("STOP PIPELINE ... DETACH", self._curr)
        return ast.StopPipeline(name, if_running)

    def _parse_drop(self) -> ast.Statement:
        self._expect("DROP", "PIPELINE")
        if_exists = self._match("IF", "EXISTS") is not None
        return ast.DropPipeline(self._expect_name("pipeline name"), if_exists)

    def _parse_alter(self) -> ast.Statement:
        self._expect("ALTER", "PIPELINE")
        name = self._expect_name("pipeline name")
        actions: list[ast.AlterAction] = []
        seen: set[type] = set()

        def add(action: ast.AlterAction, token: Token) -> None:
            if type(action) in seen:
                raise self._error("this ALTER PIPELINE action is given twice", token)
            seen.add(type(action))
            actions.append(action)

        while not self._at_end():
            token = self._curr
            word = token.value.upper() if token.type is TokenType.IDENT else ""
            if self._match("SET"):
                while True:
                    item = self._curr
                    item_word = item.value.upper() if item.type is TokenType.IDENT else ""
                    if item_word in self.UNSUPPORTED_ALTER:
                        raise self._unsupported(self.UNSUPPORTED_ALTER[item_word], item)
                    parser = self.ALTER_SET_PARSERS.get(item_word)
                    if parser is None:
                        raise self._error(
                            "expected OFFSETS, BATCH_INTERVAL, MAX_PARTITIONS_PER_BATCH, "
                            "MAX_RETRIES_PER_BATCH_PARTITION, MAX_OFFSETS_PER_BATCH_PARTITION, "
                            "CONFIG, CREDENTIALS, RETRY_OPTIONS or TRANSFORM after SET",
                            item,
                        )
                    self._advance()
                    add(parser(self), item)
                    comma = self._match_op(",")
                    nxt = self._curr
                    nxt_word = nxt.value.upper() if nxt.type is TokenType.IDENT else ""
                    if not comma and nxt_word not in self.ALTER_SET_PARSERS:
                        break
            elif self._match("STOP_ON_ERROR"):
                add(ast.SetStopOnError(self._parse_on_off(allow_none=True)), token)
            elif self._match("RELOAD", "TRANSFORM"):
                add(ast.ReloadTransform(), token)
            elif word in self.UNSUPPORTED_ALTER:
                raise self._unsupported(self.UNSUPPORTED_ALTER[word], token)
            else:
                raise self._error("expected SET, STOP_ON_ERROR or RELOAD TRANSFORM", token)
        if not actions:
            raise self._error("expected SET, STOP_ON_ERROR or RELOAD TRANSFORM", self._curr)
        return ast.AlterPipeline(name, tuple(actions))

    def _alter_offsets(self) -> ast.AlterAction:
        if self._match("EARLIEST"):
            return ast.SetOffsets(ast.OffsetsMode.EARLIEST)
        if self._match("LATEST"):
            return ast.SetOffsets(ast.OffsetsMode.LATEST)
        if self._curr.type is not TokenType.STRING:
            raise self._error(
                """expected EARLIEST, LATEST or '{"<partition>": <offset>, ...}'""", self._curr
            )
        literal = self._advance()
        text = self._json_object(literal)
        for key, value in json.loads(text).items():
            if not key.isdigit():
                raise self._error_inside(
                    f"partition {key!r} is not a Kafka partition number", literal, 0
                )
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise self._error_inside(
                    f"offset {value!r} of partition {key} is not a non-negative integer",
                    literal,
                    0,
                )
        return ast.SetOffsets(ast.OffsetsMode.JSON, text)

    def _alter_json(self, kind: type[ast.SetConfig] | type[ast.SetCredentials]) -> ast.AlterAction:
        if self._curr.type is TokenType.OP and self._curr.value == "::":
            raise self._unsupported("ALTER PIPELINE ... SET CONFIG/CREDENTIALS ::key", self._curr)
        return kind(self._json_object(self._expect_string("a JSON object")))

    def _parse_show(self) -> ast.Statement:
        self._expect("SHOW")
        if self._match("PIPELINES"):
            return ast.ShowPipelines()
        if self._check("PROFILE"):
            raise self._unsupported("SHOW PROFILE PIPELINE", self._curr)
        self._expect("CREATE", "PIPELINE")
        name = self._expect_name("pipeline name")
        return ast.ShowCreatePipeline(name, extended=self._match("EXTENDED") is not None)

    def _parse_test(self) -> ast.Statement:
        self._expect("TEST", "PIPELINE")
        name = self._expect_name("pipeline name")
        limit = self._expect_uint("TEST PIPELINE LIMIT") if self._match("LIMIT") else None
        return ast.TestPipeline(name, limit)

    def _parse_extract(self) -> ast.Statement:
        self._expect("EXTRACT", "PIPELINE")
        name = self._expect_name("pipeline name")
        partition = None
        offsets = None
        if self._match("FROM"):
            partition_token = self._expect_string("the source partition")
            if not partition_token.value.isdigit():
                raise self._error("expected a Kafka partition number", partition_token)
            partition = partition_token.value
            if self._match("OFFSETS"):
                start_token = self._curr
                start = self._expect_uint("the start offset")
                self._expect("TO")
                end = self._expect_uint("the end offset")
                if end < start:
                    raise self._error("the end offset is before the start offset", start_token)
                offsets = (start, end)
        self._expect("INTO", "OUTFILE")
        outfile = self._expect_string("the output file")
        if not outfile.value:
            raise self._error("the output file name must not be empty", outfile)
        return ast.ExtractPipeline(name, outfile.value, partition, offsets)

    def _parse_clear(self) -> ast.Statement:
        self._expect("CLEAR", "PIPELINE", "ERRORS")
        if self._at_end():
            return ast.ClearPipelineErrors()
        self._match("FOR")  # v9.1 spells FOR, v7.8 does not
        return ast.ClearPipelineErrors(self._expect_name("pipeline name"))


def _uint_alter(
    kind: Callable[[int], ast.AlterAction], what: str, minimum: int
) -> Callable[[Parser], ast.AlterAction]:
    return lambda self: kind(self._expect_uint(what, minimum=minimum))


Parser.STATEMENT_PARSERS = {
    "CREATE": Parser._parse_create,
    "START": Parser._parse_start,
    "STOP": Parser._parse_stop,
    "DROP": Parser._parse_drop,
    "ALTER": Parser._parse_alter,
    "SHOW": Parser._parse_show,
    "TEST": Parser._parse_test,
    "EXTRACT": Parser._parse_extract,
    "CLEAR": Parser._parse_clear,
    "SELECT": Parser._parse_select_into_kafka,
    "WITH": Parser._parse_select_into_kafka,
}

# SELECT ... INTO KAFKA's options, in SingleStore's documented order: the Kafka configuration and
# credentials, then SELECT ... INTO OUTFILE's format options, then the key.
Parser.INTO_KAFKA_CLAUSES = (
    _Clause("CONFIG", ("CONFIG",), Parser._clause_json("config")),
    _Clause("CREDENTIALS", ("CREDENTIALS",), Parser._clause_json("credentials")),
    _Clause("FIELDS", ("FIELDS", "COLUMNS"), Parser._parse_fields),
    _Clause("LINES", ("LINES",), Parser._parse_lines),
    _Clause("KAFKA KEY", ("KAFKA",), Parser._parse_kafka_key),
)

# SingleStore's documented order (docs/singlestore-pipelines.md §1.1). MAX_PARTITIONS_PER_BATCH
# and MAX_OFFSETS_PER_BATCH_PARTITION of 0 would make a pipeline that never loads: minimum 1.
Parser.CREATE_SOURCE_CLAUSES = (
    _Clause("CONFIG", ("CONFIG",), Parser._clause_json("config")),
    _Clause("CREDENTIALS", ("CREDENTIALS",), Parser._clause_json("credentials")),
    _Clause("BATCH_INTERVAL", ("BATCH_INTERVAL",), Parser._clause_uint("batch_interval", 0)),
    _Clause(
        "MAX_PARTITIONS_PER_BATCH",
        ("MAX_PARTITIONS_PER_BATCH",),
        Parser._clause_uint("max_partitions_per_batch", 1),
    ),
    _Clause(
        "MAX_RETRIES_PER_BATCH_PARTITION",
        ("MAX_RETRIES_PER_BATCH_PARTITION",),
        Parser._clause_uint("max_retries_per_batch_partition", 0),
    ),
    _Clause(
        "MAX_OFFSETS_PER_BATCH_PARTITION",
        ("MAX_OFFSETS_PER_BATCH_PARTITION",),
        Parser._clause_uint("max_offsets_per_batch_partition", 1),
    ),
    _Clause("WITH TRANSFORM", ("WITH",), Parser._parse_with_transform),
    _Clause("RETRY_OPTIONS", ("RETRY_OPTIONS",), Parser._parse_retry_options_clause),
    _Clause("error handling", ("REPLACE", "IGNORE", "SKIP"), Parser._parse_error_handling),
    _Clause("STOP_ON_ERROR", ("STOP_ON_ERROR",), Parser._parse_stop_on_error),
)

# LOAD DATA's CSV clause order (§1.6). NULL DEFINED BY is also accepted at the very end, where
# the CREATE PIPELINE skeleton (§1.1) shows it; both spellings mean the same.
Parser.CREATE_TARGET_CLAUSES = (
    _Clause("CHARACTER SET", ("CHARACTER", "CHARSET"), Parser._parse_charset),
    _Clause("FIELDS", ("FIELDS", "COLUMNS"), Parser._parse_fields),
    _Clause("LINES", ("LINES",), Parser._parse_lines),
    _Clause("TRAILING NULLCOLS", ("TRAILING",), Parser._parse_trailing_nullcols),
    _Clause("NULL DEFINED BY", ("NULL",), Parser._parse_null_defined_by),
    _Clause("IGNORE n LINES", ("IGNORE",), Parser._parse_ignore_lines),
    _Clause("column list", ("(",), Parser._parse_column_list),
    _Clause("SET", ("SET",), Parser._parse_set),
    _Clause("WHERE", ("WHERE",), Parser._parse_where),
    _Clause("NULL DEFINED BY", ("NULL",), Parser._parse_null_defined_by),
)

Parser.ALTER_SET_PARSERS = {
    "OFFSETS": Parser._alter_offsets,
    "BATCH_INTERVAL": _uint_alter(ast.SetBatchInterval, "BATCH_INTERVAL", 0),
    "MAX_PARTITIONS_PER_BATCH": _uint_alter(
        ast.SetMaxPartitionsPerBatch, "MAX_PARTITIONS_PER_BATCH", 1
    ),
    "MAX_RETRIES_PER_BATCH_PARTITION": _uint_alter(
        ast.SetMaxRetriesPerBatchPartition, "MAX_RETRIES_PER_BATCH_PARTITION", 0
    ),
    "MAX_OFFSETS_PER_BATCH_PARTITION": _uint_alter(
        ast.SetMaxOffsetsPerBatchPartition, "MAX_OFFSETS_PER_BATCH_PARTITION", 1
    ),
    "CONFIG": lambda self: self._alter_json(ast.SetConfig),
    "CREDENTIALS": lambda self: self._alter_json(ast.SetCredentials),
    "RETRY_OPTIONS": lambda self: ast.SetRetryOptions(self._retry_options()),
    "TRANSFORM": lambda self: ast.SetTransform(self._parse_transform_spec()),
}


def parse_statement(
    sql: str, *, line: int = 1, col: int = 1, source: str | None = None
) -> ast.Statement:
    """Parse one pipeline statement (a trailing ``;`` is allowed).

    Args:
        sql: the statement text.
        line, col: where ``sql`` starts in its file, so errors point into the file.
        source: the file name for error messages.

    Raises:
        DdlSyntaxError: invalid syntax or a combination SingleStore rejects.
        UnsupportedByLocalEngine: valid SingleStore syntax the local engine does not implement.

    >>> parse_statement("stop pipeline IF RUNNING `events`")
    StopPipeline(name='events', if_running=True)
    """
    tokens = list(tokenize(sql, line=line, col=col, source=source))
    return Parser(tokens, SourceMap(sql, line, col, source)).parse()

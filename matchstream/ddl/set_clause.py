"""A pipeline's ``SET col = expr`` as SingleStore has it: checked like SingleStore, run by MariaDB.

SingleStore's rules (LOAD DATA remarks, all versions from 7.3 to 9.1 and Helios):

* "column names may only be used on the left side of SET expressions": the right side is built
  from constants, ``@variables`` of the column list and functions. A column there is refused
  (MariaDB would read the half-built row).
* ``@name`` in a LOAD DATA statement is a LOAD DATA variable (a field of the column list), never a
  session variable, so an ``@name`` the column list does not fill is refused too.
* Functions are SingleStore's. An allow-list, not a deny-list: a MariaDB-only function missing
  from a deny-list would pass locally and fail on SingleStore (the worst class of divergence);
  a SingleStore function missing from the allow-list is refused clearly and costs one line here.
  :data:`LOCAL_FUNCTIONS` are those SingleStore documents that MariaDB runs with the same
  meaning, :data:`SINGLESTORE_ONLY_FUNCTIONS` those it documents that MariaDB lacks or means
  differently (refused as "not supported by the local engine").
* SingleStore's cast operators ``expr :> type`` and ``expr !:> type`` bind tighter than any
  other operator (``-@a :> INT`` is ``-(@a :> INT)``) and become ``CAST(expr AS type')`` with
  MariaDB's name for the type. ``::`` (JSON access) is refused.
* The pipeline built-ins: ``pipeline_batch_id()``, and ``get_kafka_pipeline_prop('name')`` for
  the four documented names (:data:`KAFKA_PROPERTIES`, values are strings). Their values are
  MariaDB variables the engine fills (:func:`translate`).

:func:`check` runs on the statement's own tokens at parse time, so every refusal names the line
and column of the offending token; :func:`translate` turns the stored text into MariaDB SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from matchstream.ddl.errors import DdlError
from matchstream.ddl.tokens import Token, TokenType, tokenize

__all__ = [
    "KAFKA_PROPERTIES", "LOCAL_FUNCTIONS", "MESSAGE_PROPERTIES", "SINGLESTORE_ONLY_FUNCTIONS",
    "ExpressionProblem", "Translated", "check", "property_variable", "translate",
]

# get_kafka_pipeline_prop()'s documented names (Helios "Retrieve Kafka Properties": "SingleStore
# supports four predefined properties"). The first two differ per message; the last two are one
# value for a whole batch partition (one Kafka partition of one topic).
MESSAGE_PROPERTIES = ("prop_offset", "prop_timestamp")
KAFKA_PROPERTIES = (*MESSAGE_PROPERTIES, "prop_partition", "prop_topicname")

# The variable a property is read from: a LOAD DATA field the engine puts in front of each line
# (message properties) or a session variable set before each LOAD DATA (the others).
_PROPERTY_VARIABLE = "@`__matchstream_{}`"
BATCH_ID_VARIABLE = "@matchstream_pipeline_batch_id"

# SingleStore functions (SQL reference: string, numeric, date and time, control flow, cast) that
# MariaDB 10.11 has with the same arguments and meaning.
LOCAL_FUNCTIONS = frozenset("""
    ABS ACOS ADDDATE ADDTIME ASCII ASIN ATAN ATAN2 BIN CAST CEIL CEILING CHAR CHARACTER_LENGTH
    CHAR_LENGTH COALESCE CONCAT CONCAT_WS CONV CONVERT CONVERT_TZ COS COT CRC32 CURDATE
    CURRENT_DATE CURRENT_TIME CURRENT_TIMESTAMP CURTIME DATE DATEDIFF DATE_ADD DATE_FORMAT
    DATE_SUB DAY DAYNAME DAYOFMONTH DAYOFWEEK DAYOFYEAR DEGREES ELT EXP EXTRACT FIELD FLOOR
    FORMAT FROM_BASE64 FROM_DAYS FROM_UNIXTIME GREATEST HEX HOUR IF IFNULL INSTR ISNULL LAST_DAY
    LCASE LEAST LEFT LENGTH LN LOCALTIME LOCALTIMESTAMP LOCATE LOG LOG10 LOG2 LOWER LPAD LTRIM
    MD5 MICROSECOND MID MINUTE MOD MONTH MONTHNAME NOW NULLIF PI POW POWER QUARTER QUOTE RADIANS
    RAND REPEAT REPLACE REVERSE RIGHT ROUND RPAD RTRIM SECOND SEC_TO_TIME SHA1 SHA2 SIGN SIN SPACE
    SQRT STRCMP STR_TO_DATE SUBDATE SUBSTR SUBSTRING SUBSTRING_INDEX SUBTIME SYSDATE TAN TIME
    TIMEDIFF TIMESTAMP TIMESTAMPADD TIMESTAMPDIFF TIME_FORMAT TIME_TO_SEC TO_BASE64 TO_DAYS
    TO_SECONDS TRIM TRUNCATE UCASE UNHEX UNIX_TIMESTAMP UPPER UTC_DATE UTC_TIME UTC_TIMESTAMP
    WEEK WEEKDAY WEEKOFYEAR YEAR YEARWEEK
""".split())
# SingleStore functions without a MariaDB function of the same meaning (JSON_EXTRACT_* take
# keys, not paths; DATE_TRUNC, INITCAP, SPLIT ... do not exist in MariaDB).
SINGLESTORE_ONLY_FUNCTIONS = frozenset("""
    BSON_EXTRACT_BSON DATE_TRUNC INITCAP JSON_ARRAY_CONTAINS_DOUBLE JSON_ARRAY_CONTAINS_JSON
    JSON_ARRAY_CONTAINS_STRING JSON_ARRAY_PUSH_DOUBLE JSON_ARRAY_PUSH_JSON JSON_ARRAY_PUSH_STRING
    JSON_BUILD_ARRAY JSON_BUILD_OBJECT JSON_DELETE_KEY JSON_EXTRACT_BIGINT JSON_EXTRACT_DOUBLE
    JSON_EXTRACT_JSON JSON_EXTRACT_STRING JSON_GET_TYPE JSON_SET_DOUBLE JSON_SET_JSON
    JSON_SET_STRING JSON_SPLICE_DOUBLE JSON_SPLICE_JSON JSON_SPLICE_STRING MONTHS_BETWEEN NVL
    SPLIT TO_CHAR TO_DATE TO_JSON TO_NUMBER TO_TIMESTAMP
""".split())
_PIPELINE_FUNCTIONS = ("PIPELINE_BATCH_ID", "GET_KAFKA_PIPELINE_PROP", "PIPELINE_SOURCE_FILE")

# Words that may stand before '(' without being a function call.
_OPERATOR_WORDS = frozenset("""
    AND AS BETWEEN BINARY CASE COLLATE DISTINCT DIV ELSE END ESCAPE IN INTERVAL IS LIKE NOT NULL
    OR REGEXP RLIKE SOUNDS THEN WHEN XOR
""".split())
_SUBQUERY_WORDS = frozenset(("SELECT", "EXISTS", "WITH"))

# SingleStore type after :> / !:> -> MariaDB's CAST type; the argument list is kept.
_CAST_TYPES = {
    **dict.fromkeys(("BIGINT", "INT", "INTEGER", "MEDIUMINT", "SMALLINT", "TINYINT", "BOOL",
                     "BOOLEAN", "SIGNED"), "SIGNED"),
    "UNSIGNED": "UNSIGNED",
    **dict.fromkeys(("DECIMAL", "DEC", "NUMERIC", "FIXED"), "DECIMAL"),
    **dict.fromkeys(("DOUBLE", "REAL"), "DOUBLE"),
    "FLOAT": "FLOAT",
    **dict.fromkeys(("CHAR", "VARCHAR", "TEXT", "TINYTEXT", "MEDIUMTEXT", "LONGTEXT"), "CHAR"),
    **dict.fromkeys(("BINARY", "VARBINARY", "BLOB", "TINYBLOB", "MEDIUMBLOB", "LONGBLOB"),
                    "BINARY"),
    "DATE": "DATE",
    "TIME": "TIME",
    **dict.fromkeys(("DATETIME", "TIMESTAMP"), "DATETIME"),
}
# Only these keep their "(n[, m])": MariaDB's CAST takes no length for the integer types.
_CAST_TAKES_ARGS = frozenset(("DECIMAL", "CHAR", "BINARY", "TIME", "DATETIME"))


class ExpressionProblem(Exception):  # noqa: N818 - turned into a positioned DdlError by the caller
    """What is wrong with a SET expression, at which token; ``unsupported``: valid on
    SingleStore, not done by the local engine."""

    def __init__(self, reason: str, token: Token, *, unsupported: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.token = token
        self.unsupported = unsupported


@dataclass(frozen=True)
class Translated:
    """One SET expression in MariaDB's SQL, and the pipeline values it reads."""

    sql: str
    batch_id: bool = False
    properties: frozenset[str] = frozenset()


def property_variable(name: str) -> str:
    """The MariaDB variable holding ``get_kafka_pipeline_prop(name)``.

    >>> property_variable("prop_offset")
    '@`__matchstream_prop_offset`'
    """
    return _PROPERTY_VARIABLE.format(name)


def _is_op(token: Token, *ops: str) -> bool:
    return token.type is TokenType.OP and token.value in ops


def _cast_at(tokens: Sequence[Token], i: int) -> int:
    """How many tokens the cast operator at ``i`` spans (``:>`` 2, ``!:>`` 3), or 0."""
    if _is_op(tokens[i], "!") and i + 2 < len(tokens) and _is_op(tokens[i + 1], ":") \
            and _is_op(tokens[i + 2], ">") and not tokens[i + 1].space_before \
            and not tokens[i + 2].space_before:
        return 3
    if _is_op(tokens[i], ":") and i + 1 < len(tokens) and _is_op(tokens[i + 1], ">") \
            and not tokens[i + 1].space_before:
        return 2
    return 0


class _Translator:
    """A single pass over an expression's tokens: primaries are kept as text pieces so that a
    cast operator can wrap the one before it."""

    def __init__(self, tokens: Sequence[Token]) -> None:
        self.tokens = [t for t in tokens if t.type is not TokenType.EOF]
        self.i = 0
        self.batch_id = False
        self.properties: set[str] = set()

    def run(self) -> Translated:
        pieces = self._sequence(closing=None)
        return Translated("".join(pieces).strip(), self.batch_id, frozenset(self.properties))

    def _sequence(self, closing: str | None) -> list[str]:
        """Pieces up to the ``closing`` parenthesis (consumed), or to the end."""
        pieces: list[str] = []
        while self.i < len(self.tokens):
            token = self.tokens[self.i]
            if closing is not None and _is_op(token, ")"):
                self.i += 1
                pieces.append(")")
                return pieces
            width = _cast_at(self.tokens, self.i)
            if width:
                if not pieces or pieces[-1].strip() in ("", "(", ","):
                    raise ExpressionProblem("a cast operator needs a value before it", token)
                operand = pieces.pop()
                self.i += width
                target = self._cast_type(token)
                space = " " if operand.startswith(" ") else ""
                cast = f"CAST({operand.strip()} AS {target})"
                length = target.partition("(")[2].rstrip(")")
                if width == 3 and target.startswith(("CHAR(", "BINARY(")) and length.isdigit():
                    # !:> "always succeeds": a string cut to length without MariaDB's truncation
                    # warning (which fails the row locally).
                    cast = f"LEFT(CAST({operand.strip()} AS {target.partition('(')[0]}), {length})"
                pieces.append(space + cast)
                continue
            pieces.append(self._primary())
        if closing is not None:
            raise ExpressionProblem("missing ')'", self.tokens[-1])
        return pieces

    def _primary(self) -> str:
        token = self.tokens[self.i]
        space = " " if token.space_before and self.i else ""
        self.i += 1
        if _is_op(token, "("):
            return space + "(" + "".join(self._sequence(closing=")"))
        nxt = self.tokens[self.i] if self.i < len(self.tokens) else None
        if token.type is TokenType.IDENT and nxt is not None and _is_op(nxt, "(") \
                and token.value.upper() not in _OPERATOR_WORDS:
            return space + self._call(token)
        return space + token.text

    def _call(self, name: Token) -> str:
        upper = name.value.upper()
        self.i += 1  # the '('
        if upper == "PIPELINE_BATCH_ID":
            if not (self.i < len(self.tokens) and _is_op(self.tokens[self.i], ")")):
                raise ExpressionProblem("pipeline_batch_id() takes no arguments", name)
            self.i += 1
            self.batch_id = True
            return BATCH_ID_VARIABLE
        if upper == "GET_KAFKA_PIPELINE_PROP":
            arg = self.tokens[self.i] if self.i < len(self.tokens) else name
            close = self.tokens[self.i + 1] if self.i + 1 < len(self.tokens) else None
            if arg.type is not TokenType.STRING or close is None or not _is_op(close, ")"):
                raise ExpressionProblem(
                    "get_kafka_pipeline_prop() takes one quoted property name: "
                    + ", ".join(f"'{p}'" for p in KAFKA_PROPERTIES), arg)
            if arg.value not in KAFKA_PROPERTIES:
                raise ExpressionProblem(
                    f"unknown Kafka property {arg.value!r}: SingleStore has "
                    + ", ".join(f"'{p}'" for p in KAFKA_PROPERTIES), arg)
            self.i += 2
            self.properties.add(arg.value)
            return property_variable(arg.value)
        return name.text + "(" + "".join(self._sequence(closing=")"))

    def _cast_type(self, operator: Token) -> str:
        if self.i >= len(self.tokens) or self.tokens[self.i].type is not TokenType.IDENT:
            raise ExpressionProblem("expected a data type after the cast operator", operator)
        type_token = self.tokens[self.i]
        self.i += 1
        upper = type_token.value.upper()
        target = _CAST_TYPES.get(upper)
        if target is None:
            raise ExpressionProblem(
                f"casting to {type_token.value} is not supported by the local engine (MariaDB's "
                "CAST has no such type)", type_token, unsupported=True)
        args = ""
        if self.i < len(self.tokens) and _is_op(self.tokens[self.i], "("):
            start = self.i
            depth = 0
            while self.i < len(self.tokens):
                tok = self.tokens[self.i]
                depth += 1 if _is_op(tok, "(") else -1 if _is_op(tok, ")") else 0
                self.i += 1
                if depth == 0:
                    break
            args = "".join(t.text if k == 0 or not t.space_before else " " + t.text
                           for k, t in enumerate(self.tokens[start:self.i]))
        if upper in ("CHAR", "VARCHAR", "BINARY", "VARBINARY") and not args \
                and upper.startswith("VAR"):
            raise ExpressionProblem(f"{upper} needs a length", type_token)
        modifier = self.tokens[self.i] if self.i < len(self.tokens) else None
        if modifier is not None and modifier.is_keyword("UNSIGNED", "SIGNED") \
                and target == "SIGNED":
            self.i += 1
            target = modifier.value.upper()
        return target + (args if target in _CAST_TAKES_ARGS else "")


def translate(expression: str | Sequence[Token]) -> Translated:
    """``expression`` (text or its tokens) in MariaDB's SQL.

    >>> translate("@v :> INT + 1").sql
    'CAST(@v AS SIGNED) + 1'
    >>> translate("CONCAT(@a, '-') :> CHAR(3)").sql
    "CAST(CONCAT(@a, '-') AS CHAR(3))"
    >>> translate("@a !:> CHAR(3)").sql
    'LEFT(CAST(@a AS CHAR), 3)'
    >>> t = translate("get_kafka_pipeline_prop('prop_offset') :> BIGINT UNSIGNED")
    >>> t.sql, sorted(t.properties)
    ('CAST(@`__matchstream_prop_offset` AS UNSIGNED)', ['prop_offset'])
    >>> translate("pipeline_batch_id()")
    Translated(sql='@matchstream_pipeline_batch_id', batch_id=True, properties=frozenset())
    """
    tokens = list(tokenize(expression)) if isinstance(expression, str) else list(expression)
    return _Translator(tokens).run()


def _function_tokens(tokens: Sequence[Token]) -> list[Token]:
    """Names of the function calls, leaving out the type names of ``CAST(x AS CHAR(3))``,
    ``CONVERT(x, DECIMAL(5,2))`` and ``x :> CHAR(3)``."""
    calls: list[Token] = []
    enclosing: list[str] = []  # the call (or '') each open parenthesis belongs to
    for k, token in enumerate(tokens):
        if _is_op(token, "("):
            before = tokens[k - 1] if k else None
            enclosing.append(before.value.upper() if before is not None
                             and before.type is TokenType.IDENT else "")
        elif _is_op(token, ")") and enclosing:
            enclosing.pop()
        if token.type is not TokenType.IDENT or k + 1 >= len(tokens) \
                or not _is_op(tokens[k + 1], "("):
            continue
        if token.value.upper() in _OPERATOR_WORDS:
            continue
        before = tokens[k - 1] if k else None
        if before is not None and (before.is_keyword("AS") or _is_op(before, ">") and k >= 2
                                   and _is_op(tokens[k - 2], ":")):
            continue  # a type: CAST(x AS CHAR(3)), x :> CHAR(3)
        if before is not None and _is_op(before, ",") and enclosing and enclosing[-1] == "CONVERT":
            continue  # CONVERT(x, CHAR(3))
        calls.append(token)
    return calls


def _column_token(tokens: Sequence[Token], name: str) -> Token | None:
    for k, token in enumerate(tokens):
        if token.type in (TokenType.IDENT, TokenType.QUOTED_IDENT) \
                and token.value.lower() == name.lower() \
                and not (k + 1 < len(tokens) and _is_op(tokens[k + 1], "(")):
            return token
    return None


def check(tokens: Sequence[Token], text: str, *, variables: frozenset[str] | None,
          transform: bool) -> None:
    """Raise :class:`ExpressionProblem` where SingleStore would refuse the SET expression
    ``text`` (its tokens ``tokens``) or the local engine cannot run it.

    ``variables``: the ``@names`` of the column list (None: the pipeline has none).
    ``transform``: the pipeline has WITH TRANSFORM.
    """
    tokens = [t for t in tokens if t.type is not TokenType.EOF]
    for token in tokens:
        if token.type is TokenType.VARIABLE and not token.text.startswith("@@"):
            if variables is None or token.value not in variables:
                raise ExpressionProblem(
                    f"{token.text} is not filled by the column list: in SET, @name is a LOAD "
                    "DATA variable of the column list, never a session variable (SingleStore)",
                    token)
        if token.is_keyword(*_SUBQUERY_WORDS):
            raise ExpressionProblem(f"a subquery ({token.text}) in SET is not supported by the "
                                    "local engine", token, unsupported=True)
        if _is_op(token, "::", "->", "->>"):
            raise ExpressionProblem(
                f"the JSON operator {token.text} is not supported by the local engine", token,
                unsupported=True)
    for name in _function_tokens(tokens):
        upper = name.value.upper()
        if upper == "PIPELINE_SOURCE_FILE":
            raise ExpressionProblem(
                "pipeline_source_file() names the file of a file source (S3, FS, ...); a Kafka "
                "pipeline has none: not supported by the local engine", name, unsupported=True)
        if upper in SINGLESTORE_ONLY_FUNCTIONS:
            raise ExpressionProblem(f"{upper}() is not supported by the local engine", name,
                                    unsupported=True)
        if upper not in LOCAL_FUNCTIONS and upper not in _PIPELINE_FUNCTIONS:
            raise ExpressionProblem(
                f"{name.text}() is not a SingleStore function the local engine knows (SingleStore "
                "refuses MariaDB-only functions; the list is in matchstream/ddl/set_clause.py)",
                name)
    translated = translate(tokens)  # cast types, built-in arguments
    if transform:
        per_message = sorted(set(MESSAGE_PROPERTIES) & translated.properties)
        if per_message:
            arg = next(t for t in tokens if t.type is TokenType.STRING and t.value in per_message)
            raise ExpressionProblem(
                f"get_kafka_pipeline_prop('{per_message[0]}') with WITH TRANSFORM is not "
                "supported by the local engine: a transform sees only message values and may "
                "write any number of rows for them, so no row has a message (SingleStore does not "
                "document a value either); have the producer put it in the message",
                arg, unsupported=True)
    _check_columns(tokens, text)


def _check_columns(tokens: Sequence[Token], text: str) -> None:
    """A column on the right side, found by sqlglot's SingleStore dialect (it knows which words
    are keywords: CURRENT_TIMESTAMP, INTERVAL 1 DAY ...)."""
    import sqlglot  # here, not at import: only a statement with SET pays for it
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    sql = translate(tokens).sql  # built-ins as variables, casts spelled CAST
    try:
        tree = sqlglot.parse_one(sql, read="singlestore")
    except SqlglotError as exc:
        raise ExpressionProblem(f"not a valid SingleStore expression: "
                                f"{str(exc).splitlines()[0]}", tokens[0]) from None
    for column in tree.find_all(exp.Column):
        token = _column_token(tokens, column.name) or tokens[0]
        raise ExpressionProblem(
            f"column names may only be used on the left side of SET expressions (SingleStore): "
            f"{column.sql(dialect='singlestore')} is a column; read the field into an @variable "
            "of the column list and use the variable", token)


def positioned(problem: ExpressionProblem,
               error: Callable[[str, Token], DdlError],
               unsupported: Callable[[str, Token], DdlError]) -> DdlError:
    """The problem as the caller's positioned error."""
    return (unsupported if problem.unsupported else error)(problem.reason, problem.token)

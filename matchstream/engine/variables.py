"""SingleStore's ``pipelines_*`` engine variables, kept in the catalog for the local engine.

On SingleStore ``SET GLOBAL pipelines_batch_interval = 1000`` changes what every pipeline
without a ``BATCH_INTERVAL`` clause uses, and ``SELECT @@pipelines_batch_interval`` reads it.
MariaDB has no such variables, so the catalog table ``engine_variables`` holds the values that
were SET (a variable never SET has SingleStore's default), and:

* :func:`engine_variables` reads them as :class:`~matchstream.ddl.ast.BatchDefaults`: the catalog
  attaches them to every definition it hands out (``PipelineRow.statement()``), so the engine's
  ``stmt.effective_*`` follow them and the per-pipeline clause still takes precedence;
* :func:`set_variables` stores new values and marks the pipelines that follow a changed variable
  as changed (their runner restarts with the new value, like after an ALTER PIPELINE);
* :func:`variable_rows` answers ``SHOW VARIABLES`` and :func:`read_expression` is the SQL the
  gate puts where ``@@name`` was.

Only the variables the local engine honours are here; the gate refuses the other
``pipelines_*`` names instead of accepting a value that would change nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import pymysql

from matchstream.ddl import ast
from matchstream.ddl.render import quote_identifier
from matchstream.errors import MatchstreamError

__all__ = [
    "TABLE_DDL",
    "VARIABLES",
    "Variable",
    "VariableValueError",
    "config_with",
    "defaults_from",
    "dumps",
    "engine_variables",
    "normalise_value",
    "read_expression",
    "set_variables",
    "variable_rows",
]

# The catalog schema's name, repeated here (catalog imports this module for the table).
_SCHEMA = "matchstream_catalog"
TABLE = "engine_variables"
_Q = f"{quote_identifier(_SCHEMA)}.{quote_identifier(TABLE)}"

TABLE_DDL = f"""CREATE TABLE IF NOT EXISTS {_Q} (
        `VARIABLE_NAME` VARCHAR(64) NOT NULL PRIMARY KEY,
        `VARIABLE_VALUE` VARCHAR(64) NOT NULL
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""


class VariableValueError(MatchstreamError):
    """``SET GLOBAL pipelines_x = value`` with a value the variable cannot take."""

    def __init__(self, name: str, value: str, reason: str) -> None:
        super().__init__(f"Variable '{name}' can't be set to the value of '{value}': {reason}")
        self.name, self.value, self.reason = name, value, reason


@dataclass(frozen=True)
class Variable:
    """One engine variable: its SingleStore default and the ``BatchDefaults`` field it feeds."""

    name: str
    field: str
    default: int | bool
    minimum: int = 0

    @property
    def is_bool(self) -> bool:
        return isinstance(self.default, bool)

    def text(self, value: int | bool) -> str:
        """As SHOW VARIABLES prints it (``ON``/``OFF`` for switches)."""
        if self.is_bool:
            return "ON" if value else "OFF"
        return str(int(value))

    def parse(self, text: str) -> int | bool:
        """A stored or SET value; raises VariableValueError."""
        word = text.strip().upper()
        if self.is_bool:
            # SingleStore: "the values ON and 1 are synonymous, as are the values OFF and 0".
            if word in ("ON", "1", "TRUE"):
                return True
            if word in ("OFF", "0", "FALSE"):
                return False
            raise VariableValueError(self.name, text, "expected ON, OFF, 1 or 0")
        # ASCII digits only: str.isdigit() takes '²' (int() then fails) and other scripts' digits.
        if not re.fullmatch(r"[0-9]+", word):
            raise VariableValueError(self.name, text, "expected an unsigned integer")
        number = int(word)
        if number < self.minimum:
            raise VariableValueError(self.name, text, f"the smallest value is {self.minimum}")
        if number > MAXIMUM:  # a wait of more is no default, and overflows the runner's timer
            raise VariableValueError(self.name, text, f"the largest value is {MAXIMUM}")
        return number


# The largest value a numeric pipelines_* variable takes (a signed 32-bit integer, as ms).
MAXIMUM = 2**31 - 1

_DEFAULTS = ast.BatchDefaults()
# Defaults: docs/singlestore-pipelines.md section 6 (and ddl/ast.py, which names the sources).
VARIABLES: dict[str, Variable] = {
    v.name: v
    for v in (
        Variable("pipelines_batch_interval", "batch_interval", _DEFAULTS.batch_interval),
        Variable("pipelines_stop_on_error", "stop_on_error", _DEFAULTS.stop_on_error),
        Variable("pipelines_max_retries_per_batch_partition", "max_retries_per_batch_partition",
                 _DEFAULTS.max_retries_per_batch_partition),
        Variable("pipelines_max_offsets_per_batch_partition", "max_offsets_per_batch_partition",
                 _DEFAULTS.max_offsets_per_batch_partition, minimum=1),
    )
}


def normalise_value(name: str, value: str) -> str:
    """The text stored for ``SET GLOBAL name = value``.

    >>> normalise_value("pipelines_stop_on_error", "off")
    'OFF'
    >>> normalise_value("pipelines_batch_interval", "1234")
    '1234'
    """
    variable = VARIABLES[name]
    return variable.text(variable.parse(value))


# MariaDB's "Table doesn't exist": a catalog from before this table, not yet upgraded by
# ensure_catalog; nothing was SET there.
_NO_SUCH_TABLE = 1146


def _stored(conn: Any) -> dict[str, str]:
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"SELECT `VARIABLE_NAME`, `VARIABLE_VALUE` FROM {_Q}")
            return {str(n): str(v) for n, v in cursor.fetchall()}
    except pymysql.err.ProgrammingError as exc:
        if exc.args and exc.args[0] == _NO_SUCH_TABLE:
            return {}
        raise


def defaults_from(stored: Mapping[str, str]) -> ast.BatchDefaults:
    """BatchDefaults from the stored values (unknown or broken entries keep the default).

    >>> defaults_from({"pipelines_batch_interval": "1234"}).batch_interval
    1234
    """
    values: dict[str, Any] = {}
    for name, text in stored.items():
        variable = VARIABLES.get(name)
        if variable is None:
            continue
        try:
            values[variable.field] = variable.parse(text)
        except VariableValueError:
            continue  # written by hand in the table: SingleStore's default still holds
    return replace(_DEFAULTS, **values)


def engine_variables(conn: Any) -> ast.BatchDefaults:
    """The ``pipelines_*`` variables now: what a pipeline without the clause uses.

    The one function the engine reads them through (the catalog attaches the result to every
    definition it hands out; a runner that wants the value fresh calls this).
    """
    return defaults_from(_stored(conn))


def read_expression(name: str) -> str:
    """SQL with the value of ``@@name``: integers as numbers, switches as 1/0 (SingleStore
    reads ``@@pipelines_stop_on_error`` as 1).

    >>> read_expression("pipelines_batch_interval")  # doctest: +ELLIPSIS
    "(SELECT COALESCE((SELECT CAST(`VARIABLE_VALUE` AS SIGNED) FROM ...), 2500))"
    """
    variable = VARIABLES[name]
    value = ("IF(`VARIABLE_VALUE` IN ('ON', '1'), 1, 0)" if variable.is_bool
             else "CAST(`VARIABLE_VALUE` AS SIGNED)")
    default = int(variable.default)
    return (f"(SELECT COALESCE((SELECT {value} FROM {_Q} WHERE `VARIABLE_NAME` = '{name}'), "
            f"{default}))")


def variable_rows(conn: Any, names: Iterable[str]) -> list[tuple[str, str]]:
    """``(Variable_name, Value)`` rows of SHOW VARIABLES for ``names``."""
    stored = _stored(conn)
    rows = []
    for name in sorted(names):
        variable = VARIABLES[name]
        try:
            value = variable.parse(stored[name]) if name in stored else variable.default
        except VariableValueError:
            value = variable.default
        rows.append((name, variable.text(value)))
    return rows


def set_variables(conn: Any, values: Mapping[str, str]) -> None:
    """Store ``SET GLOBAL`` values (already normalised) and restart the pipelines that follow
    a changed variable: their definitions leave that option out, so the new value applies."""
    from matchstream.engine import catalog  # catalog imports this module for TABLE_DDL

    before = _stored(conn)
    with conn.cursor() as cursor:
        for name, value in values.items():
            cursor.execute(
                f"INSERT INTO {_Q} (`VARIABLE_NAME`, `VARIABLE_VALUE`) VALUES (%s, %s) "
                "ON DUPLICATE KEY UPDATE `VARIABLE_VALUE` = VALUES(`VARIABLE_VALUE`)",
                [name, value])
    changed = {VARIABLES[n].field for n, v in values.items()
               if before.get(n, VARIABLES[n].text(VARIABLES[n].default)) != v}
    if changed:
        catalog.follow_variables(conn, changed, engine_variables(conn))


def config_with(config: Mapping[str, Any], stmt: ast.CreatePipeline) -> dict[str, Any]:
    """CONFIG_JSON's batch options as ``stmt`` (with its defaults) has them now."""
    out = dict(config)
    out.update(
        stop_on_error=stmt.effective_stop_on_error,
        batch_interval=stmt.effective_batch_interval,
        max_retries_per_batch_partition=stmt.effective_max_retries_per_batch_partition,
        max_offsets_per_batch_partition=stmt.effective_max_offsets_per_batch_partition,
    )
    return out


def dumps(config: Mapping[str, Any]) -> str:
    """CONFIG_JSON text, keys sorted as the catalog always wrote it."""
    return json.dumps(config, sort_keys=True)

"""How ``matchstream sql`` prints a result set: boxed, tab-separated like ``mysql -B``, or JSON.

The batch style is the mysql client's ``--batch``: a header line (left out with
``--skip-column-names``, the client's ``-N``), one line per row, fields separated by tabs,
``NULL`` for NULL, and tab, newline, backslash and NUL escaped as ``\\t``, ``\\n``, ``\\\\`` and
``\\0`` so a line is always one row. The JSON style prints one object per row (JSON Lines), so
``jq`` or a script reads it row by row; DECIMAL values stay exact numbers. Bytes that are not
UTF-8 are shown as ``0x`` and their hex digits (the client's ``--binary-as-hex``), never dropped.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = ["OutputStyle", "ResultFormat", "cell_text", "format_table"]


class OutputStyle(enum.Enum):
    TABLE = "table"
    BATCH = "batch"
    JSON = "json"


def cell_text(value: Any) -> str:
    """A value as the mysql client shows it.

    >>> cell_text(None), cell_text(b"abc"), cell_text(b"\\xff\\x00"), cell_text(Decimal("1.50"))
    ('NULL', 'abc', '0xFF00', '1.50')
    """
    if value is None:
        return "NULL"
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return "0x" + bytes(value).hex().upper()
    return str(value)


def format_table(columns: Iterable[str], rows: Iterable[Iterable[Any]], *,
                 column_names: bool = True) -> str:
    """A plain text table like the mysql client's, NULL for None."""
    header = [str(c) for c in columns]
    body = [[cell_text(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in body)]) for i, h in enumerate(header)]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    top = [rule, line(header)] if column_names else []
    out = [*top, rule, *(line(r) for r in body), rule]
    out.append(f"{len(body)} row{'s' if len(body) != 1 else ''} in set")
    return "\n".join(out)


_BATCH_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\0": "\\0"})


def _batch_field(value: Any) -> str:
    """
    >>> _batch_field("a\\tb\\nc\\\\"), _batch_field(None)
    ('a\\\\tb\\\\nc\\\\\\\\', 'NULL')
    """
    return cell_text(value).translate(_BATCH_ESCAPES)


def _json_value(value: Any) -> str:
    """One value as JSON text; DECIMAL as an exact number, dates and times as strings.

    >>> [_json_value(v) for v in (None, 3, 0.5, Decimal("12.340"), "é", b"\\xff")]
    ['null', '3', '0.5', '12.340', '"é"', '"0xFF"']
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    if isinstance(value, Decimal) and value.is_finite():
        return str(value)
    return json.dumps(cell_text(value), ensure_ascii=False)


@dataclass(frozen=True)
class ResultFormat:
    """The style and whether the batch style prints its header line."""

    style: OutputStyle = OutputStyle.TABLE
    column_names: bool = True

    @property
    def keeps_stdout_for_rows(self) -> bool:
        """Batch and JSON output is read by programs: statement messages go to stderr."""
        return self.style is not OutputStyle.TABLE

    def render(self, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
        """The result set as text, without a trailing newline (empty for no lines at all).

        >>> ResultFormat(OutputStyle.BATCH).render(["a", "b"], [(1, None)])
        'a\\tb\\n1\\tNULL'
        >>> ResultFormat(OutputStyle.JSON).render(["a", "b"], [(1, "x")])
        '{"a": 1, "b": "x"}'
        """
        if self.style is OutputStyle.TABLE:
            return format_table(columns, rows, column_names=self.column_names)
        if self.style is OutputStyle.BATCH:
            lines = ["\t".join(_batch_field(c) for c in columns)] if self.column_names else []
            lines += ["\t".join(_batch_field(v) for v in row) for row in rows]
            return "\n".join(lines)
        keys = [json.dumps(str(c), ensure_ascii=False) for c in columns]
        return "\n".join(
            "{" + ", ".join(f"{k}: {_json_value(v)}" for k, v in zip(keys, row, strict=True))
            + "}" for row in rows)

"""Row-by-row CSV decoding without NumPy: the reference decoder and the small-batch path.

``features._decode_slow`` builds arrays from it, and :mod:`matchstream.ml.pure_scorer` uses it
directly so that scoring a small batch never imports NumPy (whose import alone costs more than
the 200 ms cold-start budget on a slow machine). It also words every bad-row message.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence

from matchstream.ml.errors import BadRow
from matchstream.ml.spec import FeatureSpec

__all__ = ["ID_TABLE", "RowDecoder", "bigint_id", "id_reason", "label_value", "shown",
           "split_fields", "strip_newlines"]

Row = tuple[str, float, list[float], list[int]]

# Where every id ends up: the scoring pipeline loads it into this BIGINT column, so an id the
# table would refuse is a bad row here, before it can fail a batch's LOAD DATA.
ID_TABLE = "predictions.id"
_BIGINT_MIN, _BIGINT_MAX = -(2 ** 63), 2 ** 63 - 1
_INTEGER = re.compile(r"-?[0-9]+")  # ASCII digits only: str.isdigit would take '²' or '٣'
# A value quoted in a reason is cut to this many characters: a reason names the problem, the
# message itself is elsewhere (the producer's file line, rejected_rows.message).
_SHOWN_CHARS = 80


def bigint_id(text: str) -> bool:
    """Whether ``text`` is a base-10 integer that fits BIGINT (what ``predictions.id`` loads).

    >>> [bigint_id(t) for t in ("42", "-7", "007", "9223372036854775807", "9223372036854775808")]
    [True, True, True, True, False]
    >>> [bigint_id(t) for t in ("", "abc", "1.0", "+5", " 5", "1_000", "\u0663")]
    [False, False, False, False, False, False, False]
    """
    if not _INTEGER.fullmatch(text):
        return False
    digits = len(text.lstrip("-").lstrip("0"))
    return digits < 19 or (digits == 19 and _BIGINT_MIN <= int(text) <= _BIGINT_MAX)


def id_reason(text: str, table: str = ID_TABLE) -> str:
    """The bad-row reason for an id :func:`bigint_id` refuses (``table``: the column it loads)."""
    return f"id must be an integer that fits BIGINT ({table}), got {shown(text)}"


def shown(text: str) -> str:
    """``text`` quoted for a reason, cut to :data:`_SHOWN_CHARS` characters.

    >>> shown("abc"), shown("x" * 100)[-20:]
    ("'abc'", "xxxx'... (100 chars)")
    """
    if len(text) <= _SHOWN_CHARS:
        return repr(text)
    return f"{text[:_SHOWN_CHARS]!r}... ({len(text)} chars)"


def strip_newlines(payloads: Sequence[bytes]) -> list[bytes]:
    """Drop one trailing ``\\n`` or ``\\r\\n`` per message (producers often send whole lines)."""
    return [p[:-2] if p.endswith(b"\r\n") else p[:-1] if p.endswith(b"\n") else p
            for p in payloads]


class RowDecoder:
    """Decodes one message into ``(id, label, numbers, category codes)`` or raises BadRow.

    Numbers are floats with NaN for an empty field, codes index the vocabulary (-1 = empty),
    the label is 0.0 for scoring rows.
    """

    def __init__(self, spec: FeatureSpec, *, with_label: bool) -> None:
        self.spec = spec
        self.with_label = with_label
        self.columns = spec.input_columns(with_label=with_label)
        index = {name: i for i, name in enumerate(self.columns)}
        self._id = index[spec.id]
        self._label = index[spec.label] if with_label else -1
        self._numeric = [(index[f.name], f.name) for f in spec.numeric]
        self._categorical = [(index[f.name], f.name, f.vocabulary,
                              {tok: i for i, tok in enumerate(f.vocabulary)})
                             for f in spec.categorical]

    def decode(self, line: bytes, position: int) -> Row:
        fields = self._split(line, position)
        row_id = fields[self._id]
        if not row_id:
            raise BadRow("id is empty", index=position, column=self.spec.id)
        if not bigint_id(row_id):
            raise BadRow(id_reason(row_id), index=position, column=self.spec.id)
        label = 0.0
        if self.with_label:
            label = label_value(fields[self._label], position, self.spec.label)
        nums = [_number(fields[i], position, name, allow_empty=True)
                for i, name in self._numeric]
        cats = []
        for i, name, vocabulary, lookup in self._categorical:
            token = fields[i]
            code = -1 if token == "" else lookup.get(token)
            if code is None:
                listed = ", ".join(vocabulary[:10]) + (", ..." if len(vocabulary) > 10 else "")
                raise BadRow(f"unknown category {shown(token)} (vocabulary: {listed})",
                             index=position, column=name)
            cats.append(code)
        return row_id, label, nums, cats

    def _split(self, line: bytes, position: int) -> list[str]:
        return split_fields(line, position, self.columns)


def split_fields(line: bytes, position: int, columns: Sequence[str]) -> list[str]:
    """The CSV fields of one message that should hold ``columns``, or BadRow saying why not."""
    if not line:
        raise BadRow("empty message", index=position)
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRow(f"not valid UTF-8 (byte {exc.start}: "
                     f"{line[exc.start:exc.start + 1]!r})", index=position) from exc
    if "\n" in text or "\r" in text:
        raise BadRow("holds a line break: one message must carry exactly one CSV line",
                     index=position)
    fields = next(csv.reader([text])) if '"' in text else text.split(",")
    if [f.strip() for f in fields] == list(columns):
        raise BadRow("this is the CSV header; send data rows only", index=position)
    if len(fields) != len(columns):
        named = ", ".join(columns[:4]) + (", ..." if len(columns) > 4 else "")
        raise BadRow(f"expected {len(columns)} fields ({named}), got {len(fields)}",
                     index=position)
    return fields


def label_value(text: str, position: int, column: str) -> float:
    """A label field as 0.0 or 1.0, or BadRow (missing, not a number, anything else)."""
    label = _number(text, position, column)
    if label not in (0.0, 1.0):
        raise BadRow(f"label must be 0 or 1, got {shown(text)}", index=position, column=column)
    return label


def _number(text: str, position: int, column: str, *, allow_empty: bool = False) -> float:
    if text == "":
        if allow_empty:
            return math.nan
        raise BadRow("value is missing", index=position, column=column)
    try:
        value = float(text)
    except ValueError:
        raise BadRow(f"{shown(text)} is not a number", index=position, column=column) from None
    if not math.isfinite(value):
        raise BadRow(f"{shown(text)} is not a finite number", index=position, column=column)
    return value

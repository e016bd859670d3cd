"""Decoding a batch of CSV messages into arrays, and the preprocessing both scorers share.

One Kafka message holds one CSV line (an optional trailing newline is dropped). A clean batch,
the normal case, is decoded without a Python loop over fields: the batch is joined into one buffer
and numbers are parsed with NumPy arithmetic (``_parse_decimals``), which is what lets
``score.py`` keep up with 200k rows/s. Anything unusual (quotes, tabs, a wrong field count,
invalid UTF-8, an id that is not a BIGINT) sends the batch through ``_decode_slow``, a plain
row-by-row decoder that is also the reference the fast path is tested against and the one that
words the error messages.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from matchstream.ml.errors import BadRow
from matchstream.ml.rowparse import RowDecoder, bigint_id, strip_newlines
from matchstream.ml.spec import FeatureSpec

__all__ = ["Batch", "decode_batch", "design_matrix"]

_COMMA, _NEWLINE, _MINUS, _DOT, _ZERO, _NINE = (ord(c) for c in ",\n-.09")
# Up to 15 digits the integer mantissa is exact in a float64 and 10**k is exact for k <= 22, so
# mantissa / 10**k is the correctly rounded value: the same double ``float(text)`` returns.
_MAX_FAST_DIGITS = 15
_MAX_FAST_WIDTH = _MAX_FAST_DIGITS + 2  # sign and decimal point
_POWERS = 10.0 ** np.arange(_MAX_FAST_DIGITS + 1)


@dataclass(frozen=True)
class Batch:
    """The usable rows of one batch.

    ``numeric`` holds the raw numbers (NaN where the field was empty), ``categorical`` the index
    of each token in its vocabulary (-1 where empty), ``labels`` 0.0/1.0 for training rows.
    ``positions`` are the rows' message indexes, ``skipped`` the rows left out under the skip
    policy (always empty under the default fail policy, which raises instead).
    """

    ids: list[str]
    numeric: np.ndarray
    categorical: np.ndarray
    labels: np.ndarray | None
    positions: np.ndarray
    skipped: tuple[BadRow, ...] = ()

    def __len__(self) -> int:
        return len(self.ids)


def decode_batch(
    payloads: Sequence[bytes], spec: FeatureSpec, *, with_label: bool, skip_bad: bool = False
) -> Batch:
    """Decode framed messages into a :class:`Batch`.

    With ``skip_bad`` false the first bad row raises :class:`BadRow`; with it true bad rows are
    left out and reported in ``Batch.skipped``.

    >>> spec = FeatureSpec.from_dict({"id": "id", "label": "y", "columns": ["id", "y", "x"],
    ...                               "numeric": {"x": {"mean": 0, "std": 1}}})
    >>> b = decode_batch([b"7,1,2.5", b"8,0,"], spec, with_label=True)
    >>> b.ids, b.numeric.ravel().tolist(), b.labels.tolist()
    (['7', '8'], [2.5, nan], [1.0, 0.0])
    """
    columns = spec.input_columns(with_label=with_label)
    whole = b"\n".join(payloads)
    if whole.count(b"\n") != len(payloads) - 1 or b"\r" in whole:
        lines = strip_newlines(payloads)
        whole = b"\n".join(lines)
    else:
        lines = list(payloads)
    fast = _decode_fast(lines, whole, spec, columns, with_label)
    if fast is not None:
        return fast
    return _decode_slow(lines, spec, columns, with_label, skip_bad)


def design_matrix(spec: FeatureSpec, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
    """Impute, standardise and one-hot encode: the model's input, one column per weight."""
    means = np.array([f.mean for f in spec.numeric], dtype=np.float64)
    stds = np.array([f.std for f in spec.numeric], dtype=np.float64)
    filled = np.where(np.isnan(numeric), means, numeric)
    parts = [(filled - means) / stds]
    for j, feature in enumerate(spec.categorical):
        onehot = np.zeros((len(categorical), len(feature.vocabulary)), dtype=np.float64)
        rows = np.flatnonzero(categorical[:, j] >= 0)
        onehot[rows, categorical[rows, j]] = 1.0
        parts.append(onehot)
    return np.hstack(parts) if parts else np.zeros((len(numeric), 0))


def _decode_fast(
    lines: list[bytes], whole: bytes, spec: FeatureSpec, columns: tuple[str, ...],
    with_label: bool,
) -> Batch | None:
    """Decode a clean batch with array operations, or return None to use the slow path.

    ``whole`` is ``lines`` joined by newlines. Only the columns up to the last one the model
    uses are tokenised: the demo rows carry 98 columns of which the model reads the first 21.
    """
    n, width = len(lines), len(columns)
    if n == 0:
        return _empty(spec, with_label)
    if any(ch in whole for ch in (b'"', b"\t", b"\\", b"\r")) or whole.count(b"\n") != n - 1:
        return None
    counts = np.fromiter(map(bytes.count, lines, itertools.repeat(b",", n)), dtype=np.int64,
                         count=n)
    if (counts != width - 1).any():
        return None
    try:
        whole.decode("utf-8")
    except UnicodeDecodeError:
        return None
    index = {name: i for i, name in enumerate(columns)}
    used = [index[spec.id], *(index[f.name] for f in spec.numeric),
            *(index[f.name] for f in spec.categorical)]
    if with_label:
        used.append(index[spec.label])
    need = max(used) + 1
    buf = whole if need == width else b"\n".join(
        [b",".join(p.split(b",", need)[:need]) for p in lines])
    # Padding lets _parse_decimals read a few bytes past the last field without bounds checks.
    arr = np.frombuffer(buf + b"\n" * _MAX_FAST_WIDTH, dtype=np.uint8)
    seps = np.flatnonzero((arr[:len(buf)] == _COMMA) | (arr[:len(buf)] == _NEWLINE))
    starts = np.concatenate(([0], seps + 1)).reshape(n, need)
    ends = np.concatenate((seps, [len(buf)])).reshape(n, need)

    id_col = index[spec.id]
    ids = [buf[s:e].decode("utf-8") for s, e in zip(starts[:, id_col].tolist(),
                                                   ends[:, id_col].tolist(), strict=True)]
    if not _bigint_ids(ids):  # the slow path words the reason
        return None

    num_cols = [index[f.name] for f in spec.numeric]
    numeric = np.empty((n, len(num_cols)), dtype=np.float64)
    for j, col in enumerate(num_cols):
        numeric[:, j], ok = _parse_decimals(arr, starts[:, col], ends[:, col])
        if not ok.all():
            return None

    labels = None
    if with_label:
        col = index[spec.label]
        labels, ok = _parse_decimals(arr, starts[:, col], ends[:, col])
        if not ok.all() or not np.isin(labels, (0.0, 1.0)).all():
            return None

    categorical = np.empty((n, len(spec.categorical)), dtype=np.int64)
    for j, feature in enumerate(spec.categorical):
        col = index[feature.name]
        lookup = {tok.encode(): i for i, tok in enumerate(feature.vocabulary)}
        lookup[b""] = -1
        codes = [lookup.get(buf[s:e], -2) for s, e in zip(starts[:, col].tolist(),
                                                          ends[:, col].tolist(), strict=True)]
        categorical[:, j] = codes
    if (categorical == -2).any():
        return None
    return Batch(ids, numeric, categorical, labels, np.arange(n))


def _bigint_ids(ids: list[str]) -> bool:
    """:func:`~matchstream.ml.rowparse.bigint_id` for every id, in a few C calls for the usual
    batch of non-negative ids below 19 digits (a Python call per id costs 15 % of scoring)."""
    if not all(ids):
        return False
    joined = "".join(ids)
    if joined.isascii() and joined.isdigit() and max(map(len, ids)) < 19:
        return True
    return all(map(bigint_id, ids))


def _parse_decimals(arr: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray,
                                                                                   np.ndarray]:
    """Parse the fields ``arr[starts:ends]`` of one column as plain decimals (``-12.5``, ``.5``).

    Returns the values (NaN for an empty field) and a mask of the fields it parsed exactly; the
    caller falls back to ``float()`` for the rest (exponents, ``+``, junk). Works one character
    position at a time across all rows (Horner's rule), so the cost follows the column's widest
    value, which is why it is called per column rather than on the whole batch.
    """
    lengths = ends - starts
    width = int(min(lengths.max(initial=0), _MAX_FAST_WIDTH))
    ok = lengths <= _MAX_FAST_WIDTH
    mantissa = np.zeros(len(starts), dtype=np.float64)
    scale = np.zeros(len(starts), dtype=np.int64)
    ndigits = np.zeros(len(starts), dtype=np.int64)
    seen_dot = np.zeros(len(starts), dtype=bool)
    negative = np.zeros(len(starts), dtype=bool)
    for j in range(width):
        inside = j < lengths
        chars = arr[starts + j]  # the caller pads arr by _MAX_FAST_WIDTH bytes
        digit = chars - np.uint8(_ZERO)  # wraps below '0', so one comparison tests the range
        is_digit = inside & (digit <= 9)
        is_dot = inside & (chars == _DOT)
        if j == 0:
            negative = inside & (chars == _MINUS)
            ok &= ~(inside & ~is_digit & ~is_dot & ~negative)
        else:
            ok &= ~(inside & ~is_digit & ~is_dot)
        ok &= ~(is_dot & seen_dot)
        seen_dot |= is_dot
        # Whole numbers up to 15 digits are exact in float64, so this sum is exact too.
        mantissa = np.where(is_digit, mantissa * 10 + digit, mantissa)
        scale += is_digit & seen_dot
        ndigits += is_digit
    ok &= (ndigits <= _MAX_FAST_DIGITS) & ((ndigits > 0) | (lengths == 0))
    values = mantissa / _POWERS[np.minimum(scale, _MAX_FAST_DIGITS)]
    values = np.where(negative, -values, values)
    values[lengths == 0] = np.nan
    return values, ok


def _empty(spec: FeatureSpec, with_label: bool) -> Batch:
    return Batch(
        [],
        np.zeros((0, len(spec.numeric))),
        np.zeros((0, len(spec.categorical)), dtype=np.int64),
        np.zeros(0) if with_label else None,
        np.zeros(0, dtype=np.int64),
    )


def _decode_slow(
    lines: list[bytes], spec: FeatureSpec, columns: tuple[str, ...], with_label: bool,
    skip_bad: bool,
) -> Batch:
    decoder = RowDecoder(spec, with_label=with_label)
    rows: list[tuple[str, float, list[float], list[int]]] = []
    positions: list[int] = []
    skipped: list[BadRow] = []
    for position, line in enumerate(lines):
        try:
            rows.append(decoder.decode(line, position))
        except BadRow as bad:
            if not skip_bad:
                raise
            skipped.append(bad)
            continue
        positions.append(position)
    n = len(rows)
    return Batch(
        [r[0] for r in rows],
        np.array([r[2] for r in rows], dtype=np.float64).reshape(n, len(spec.numeric)),
        np.array([r[3] for r in rows], dtype=np.int64).reshape(n, len(spec.categorical)),
        np.array([r[1] for r in rows], dtype=np.float64) if with_label else None,
        np.array(positions, dtype=np.int64),
        tuple(skipped),
    )

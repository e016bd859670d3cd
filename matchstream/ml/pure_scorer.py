"""Scoring a small batch in plain Python, so ``score.py`` never imports NumPy for it.

SingleStore starts one transform process per batch partition, and a trickle of messages makes
many small batches: for them process start-up is the whole cost, and importing NumPy alone takes
150-300 ms on a small VM. Up to :func:`small_batch` rows the same function as
:class:`matchstream.ml.numpy_scorer.NumpyScorer` is computed with ``math`` (the parity test
holds both, and TensorFlow, to 1e-6 on the whole score set); above it NumPy's speed wins. Where
that happens depends on the model, so the cut-over is per format: an MLP row costs plain Python
about twice what a linear row costs (16 dot products instead of one), NumPy hardly more.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from matchstream.ml.errors import BadRow
from matchstream.ml.model_json import LINEAR_FORMAT, MLP_FORMAT, LinearModel, MlpModel, parse_model
from matchstream.ml.rowparse import RowDecoder, strip_newlines
from matchstream.ml.spec import FeatureSpec

__all__ = ["SMALL_BATCH", "SMALL_MLP_BATCH", "PureScorer", "small_batch"]

# Where the NumPy path (fixed ~200 ms import, then faster per row) overtakes plain Python, per
# model format. scripts/bench_cutover.py (docs/benchmarks.md, 2026-12-02): an MLP's crossing is
# at 2,000-3,000 rows; a linear model's above 4,000, so its 2,000 (also the decoder's cut-over,
# rejects.py) errs on the side of NumPy and is kept.
SMALL_BATCH = 2000
SMALL_MLP_BATCH = 2000
_CUT_OVER = {LINEAR_FORMAT: SMALL_BATCH, MLP_FORMAT: SMALL_MLP_BATCH}


def small_batch(data: dict[str, Any]) -> int:
    """The most rows of a batch the plain-Python path scores for this ``model.json``."""
    return _CUT_OVER.get(data.get("format"), SMALL_BATCH)  # type: ignore[arg-type]


class _Function(Protocol):
    def predict_one(self, nums: list[float], cats: list[int]) -> float: ...


@dataclass(frozen=True)
class PureScorer:
    spec: FeatureSpec
    function: _Function
    threshold: float
    version: int

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PureScorer:
        model = parse_model(data)
        function: _Function = (_Linear.of(model) if isinstance(model, LinearModel)
                               else _Mlp.of(model))
        return cls(model.spec, function, model.threshold, model.version)

    def score(self, payloads: Sequence[bytes], *, skip_bad: bool = False
              ) -> tuple[list[str], list[float], list[BadRow]]:
        """``(ids, probabilities, skipped rows)`` in input order."""
        decoder = RowDecoder(self.spec, with_label=False)
        predict = self.function.predict_one
        ids: list[str] = []
        probs: list[float] = []
        skipped: list[BadRow] = []
        for position, line in enumerate(strip_newlines(payloads)):
            try:
                row_id, _, nums, cats = decoder.decode(line, position)
            except BadRow as bad:
                if not skip_bad:
                    raise
                skipped.append(bad)
                continue
            ids.append(row_id)
            probs.append(predict(nums, cats))
        return ids, probs, skipped

    def predict_one(self, nums: list[float], cats: list[int]) -> float:
        return self.function.predict_one(nums, cats)


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@dataclass(frozen=True)
class _Linear:
    numeric: tuple[tuple[float, float, float], ...]  # (mean, std, weight) per numeric feature
    categorical: tuple[tuple[float, ...], ...]  # weight per token, per categorical feature
    bias: float

    @classmethod
    def of(cls, model: LinearModel) -> _Linear:
        numeric = tuple(
            (float(f.mean), float(f.std), weight)  # type: ignore[arg-type]
            for f, weight in zip(model.spec.numeric, model.numeric_weights, strict=True)
        )
        return cls(numeric, model.categorical_weights, model.bias)

    def predict_one(self, nums: list[float], cats: list[int]) -> float:
        z = self.bias
        for x, (mean, std, weight) in zip(nums, self.numeric, strict=True):
            z += ((mean if x != x else x) - mean) / std * weight  # x != x: NaN, an empty field
        for code, weights in zip(cats, self.categorical, strict=True):
            if code >= 0:
                z += weights[code]
        return _sigmoid(z)


@dataclass(frozen=True)
class _Mlp:
    """The first layer split as the input is: a dense part over the standardised numbers and,
    per categorical feature, one row of weights per token (a one-hot input only adds its row)."""

    means: tuple[float, ...]
    stds: tuple[float, ...]
    numeric_columns: tuple[tuple[float, ...], ...]  # per first-layer unit: weight per number
    token_rows: tuple[tuple[tuple[float, ...], ...], ...]  # feature -> token -> unit weights
    first_biases: tuple[float, ...]
    later: tuple[tuple[tuple[tuple[float, ...], ...], tuple[float, ...]], ...]  # columns, biases

    @classmethod
    def of(cls, model: MlpModel) -> _Mlp:
        spec, first = model.spec, model.layers[0]
        n = len(spec.numeric)
        rows = first.weights
        token_rows = []
        offset = n
        for feature in spec.categorical:
            token_rows.append(tuple(rows[offset:offset + len(feature.vocabulary)]))
            offset += len(feature.vocabulary)
        return cls(
            tuple(float(f.mean) for f in spec.numeric),  # type: ignore[arg-type]
            tuple(float(f.std) for f in spec.numeric),  # type: ignore[arg-type]
            tuple(zip(*rows[:n], strict=True)) if n else tuple(() for _ in first.biases),
            tuple(token_rows), first.biases,
            tuple((tuple(zip(*layer.weights, strict=True)), layer.biases)
                  for layer in model.layers[1:]))

    def predict_one(self, nums: list[float], cats: list[int]) -> float:
        mul = operator.mul
        xs = [((mean if x != x else x) - mean) / std  # x != x: NaN, an empty field
              for x, mean, std in zip(nums, self.means, self.stds, strict=True)]
        h = [b + sum(map(mul, xs, column))
             for b, column in zip(self.first_biases, self.numeric_columns, strict=True)]
        for code, rows in zip(cats, self.token_rows, strict=True):
            if code >= 0:
                h = list(map(operator.add, h, rows[code]))
        if not self.later:  # a single sigmoid layer: a linear model in this format
            return _sigmoid(h[0])
        z = 0.0
        for number, (columns, biases) in enumerate(self.later, 1):
            h = [v if v > 0.0 else 0.0 for v in h]  # ReLU of the layer before
            if number == len(self.later):
                z = biases[0] + sum(map(mul, h, columns[0]))
            else:
                h = [b + sum(map(mul, h, column))
                     for b, column in zip(biases, columns, strict=True)]
        return _sigmoid(z)

"""Scoring a small batch in plain Python, so ``score.py`` never imports NumPy for it.

SingleStore starts one transform process per batch partition, and a trickle of messages makes
many small batches: for them process start-up is the whole cost, and importing NumPy alone takes
150-300 ms on a small VM. Below :data:`SMALL_BATCH` rows the same function as
:class:`matchstream.ml.numpy_scorer.NumpyScorer` is computed with ``math`` (the parity test
holds both, and TensorFlow, to 1e-6 on the whole score set); above it NumPy's speed wins.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from matchstream.ml.errors import BadRow
from matchstream.ml.model_json import parse_model
from matchstream.ml.rowparse import RowDecoder, strip_newlines
from matchstream.ml.spec import FeatureSpec

__all__ = ["SMALL_BATCH", "PureScorer"]

# Where the NumPy path (fixed ~200 ms import, then ~5x faster per row) overtakes plain Python.
SMALL_BATCH = 2000


@dataclass(frozen=True)
class PureScorer:
    spec: FeatureSpec
    numeric: tuple[tuple[float, float, float], ...]  # (mean, std, weight) per numeric feature
    categorical: tuple[tuple[float, ...], ...]  # weight per token, per categorical feature
    bias: float
    threshold: float
    version: int

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PureScorer:
        model = parse_model(data)
        numeric = tuple(
            (float(f.mean), float(f.std), weight)  # type: ignore[arg-type]
            for f, weight in zip(model.spec.numeric, model.numeric_weights, strict=True)
        )
        return cls(model.spec, numeric, model.categorical_weights, model.bias, model.threshold,
                   model.version)

    def score(self, payloads: Sequence[bytes], *, skip_bad: bool = False
              ) -> tuple[list[str], list[float], list[BadRow]]:
        """``(ids, probabilities, skipped rows)`` in input order."""
        decoder = RowDecoder(self.spec, with_label=False)
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
            probs.append(self.predict_one(nums, cats))
        return ids, probs, skipped

    def predict_one(self, nums: list[float], cats: list[int]) -> float:
        z = self.bias
        for x, (mean, std, weight) in zip(nums, self.numeric, strict=True):
            z += ((mean if x != x else x) - mean) / std * weight  # x != x: NaN, an empty field
        for code, weights in zip(cats, self.categorical, strict=True):
            if code >= 0:
                z += weights[code]
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return e / (1.0 + e)

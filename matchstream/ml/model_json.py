"""``model.json``, the portable form of a model version, parsed once for both scorers.

It holds the spec with its preprocessing constants, one weight per numeric feature and per
category token, the bias and the decision threshold. Only the standard library is used, so the
plain-Python scorer can read it without importing NumPy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from matchstream.ml.spec import FeatureSpec

__all__ = ["MODEL_FORMAT", "LinearModel", "parse_model"]

MODEL_FORMAT = "matchstream.linear/1"


@dataclass(frozen=True)
class LinearModel:
    spec: FeatureSpec
    numeric_weights: tuple[float, ...]  # in spec.numeric order
    categorical_weights: tuple[tuple[float, ...], ...]  # per feature, in vocabulary order
    bias: float
    threshold: float
    version: int


def parse_model(data: dict[str, Any]) -> LinearModel:
    """Build from a parsed ``model.json``; KeyError/ValueError mean a corrupt file."""
    if data.get("format") != MODEL_FORMAT:
        raise ValueError(f"format {data.get('format')!r} is not {MODEL_FORMAT!r}")
    spec = FeatureSpec.from_dict(data["spec"])
    w = data["weights"]
    return LinearModel(
        spec,
        tuple(float(w["numeric"][f.name]) for f in spec.numeric),
        tuple(
            tuple(float(w["categorical"][f.name][t]) for t in f.vocabulary)
            for f in spec.categorical
        ),
        float(data["bias"]),
        float(data["threshold"]),
        int(data["version"]),
    )

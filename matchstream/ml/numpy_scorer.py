"""The TensorFlow-free scorer: the trained function evaluated with NumPy from ``model.json``.

``model.json`` is the portable form of a version: the spec with its preprocessing constants, one
weight per numeric feature and per category token, the bias and the decision threshold. The
TensorFlow model (:mod:`matchstream.ml.linear`) writes it; the parity test holds the two to 1e-6.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from matchstream.ml.features import design_matrix
from matchstream.ml.spec import FeatureSpec

__all__ = ["MODEL_FORMAT", "NumpyScorer"]

MODEL_FORMAT = "matchstream.linear/1"


@dataclass(frozen=True)
class NumpyScorer:
    spec: FeatureSpec
    weights: np.ndarray
    bias: float
    threshold: float
    version: int

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NumpyScorer:
        """Build from a parsed ``model.json``; KeyError/ValueError mean a corrupt file."""
        if data.get("format") != MODEL_FORMAT:
            raise ValueError(f"format {data.get('format')!r} is not {MODEL_FORMAT!r}")
        spec = FeatureSpec.from_dict(data["spec"])
        w = data["weights"]
        vector = [float(w["numeric"][f.name]) for f in spec.numeric]
        for feature in spec.categorical:
            vector += [float(w["categorical"][feature.name][t]) for t in feature.vocabulary]
        return cls(spec, np.array(vector), float(data["bias"]), float(data["threshold"]),
                   int(data["version"]))

    def predict_proba(self, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        logits = design_matrix(self.spec, numeric, categorical) @ self.weights + self.bias
        # exp of a large positive argument overflows; this form only ever exponentiates -|z|.
        e = np.exp(-np.abs(logits))
        return np.where(logits >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def model_dict(spec: FeatureSpec, weights: np.ndarray, bias: float, threshold: float,
               version: int) -> dict[str, Any]:
    """The ``model.json`` content for a weight vector laid out like :func:`design_matrix`."""
    values = [float(v) for v in weights]
    numeric = {f.name: values[i] for i, f in enumerate(spec.numeric)}
    categorical: dict[str, dict[str, float]] = {}
    offset = len(spec.numeric)
    for feature in spec.categorical:
        categorical[feature.name] = dict(zip(feature.vocabulary,
                                             values[offset:offset + len(feature.vocabulary)],
                                             strict=True))
        offset += len(feature.vocabulary)
    return {"format": MODEL_FORMAT, "version": version, "spec": spec.to_dict(),
            "weights": {"numeric": numeric, "categorical": categorical},
            "bias": float(bias), "threshold": float(threshold)}

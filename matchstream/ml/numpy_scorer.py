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
from matchstream.ml.model_json import MODEL_FORMAT, parse_model
from matchstream.ml.spec import FeatureSpec

__all__ = ["MODEL_FORMAT", "NumpyScorer"]



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
        model = parse_model(data)
        vector = [*model.numeric_weights, *(w for ws in model.categorical_weights for w in ws)]
        return cls(model.spec, np.array(vector), model.bias, model.threshold, model.version)

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

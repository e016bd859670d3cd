"""The TensorFlow-free scorer: the trained function evaluated with NumPy from ``model.json``.

Both formats (:mod:`matchstream.ml.model_json`) become the same thing here, a stack of layers
over :func:`~matchstream.ml.features.design_matrix`: the linear model is one sigmoid layer of one
unit, the MLP its hidden ReLU layers and then that. The TensorFlow models
(:mod:`matchstream.ml.linear`, :mod:`matchstream.ml.dnn`) write the file; the parity test holds
each to this within 1e-6.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from matchstream.ml.features import design_matrix
from matchstream.ml.model_json import MODEL_FORMAT, LinearModel, parse_model
from matchstream.ml.spec import FeatureSpec

__all__ = ["MODEL_FORMAT", "NumpyScorer"]


@dataclass(frozen=True)
class NumpyScorer:
    spec: FeatureSpec
    layers: tuple[tuple[np.ndarray, np.ndarray], ...]  # (weights in x out, biases); ReLU between
    threshold: float
    version: int
    estimator: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NumpyScorer:
        """Build from a parsed ``model.json``; KeyError/ValueError mean a corrupt file."""
        model = parse_model(data)
        layers: tuple[tuple[np.ndarray, np.ndarray], ...]
        if isinstance(model, LinearModel):
            vector = [*model.numeric_weights,
                      *(w for ws in model.categorical_weights for w in ws)]
            layers = ((np.array(vector).reshape(-1, 1), np.array([model.bias])),)
        else:
            layers = tuple((np.array(layer.weights).reshape(len(layer.weights), -1),
                            np.array(layer.biases)) for layer in model.layers)
        return cls(model.spec, layers, model.threshold, model.version, model.estimator)

    def predict_proba(self, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        x = design_matrix(self.spec, numeric, categorical)
        for weights, biases in self.layers[:-1]:
            x = np.maximum(x @ weights + biases, 0.0)
        weights, biases = self.layers[-1]
        logits = x @ weights[:, 0] + biases[0]
        # exp of a large positive argument overflows; this form only ever exponentiates -|z|.
        e = np.exp(-np.abs(logits))
        return np.where(logits >= 0, 1.0 / (1.0 + e), e / (1.0 + e))

"""The TensorFlow linear classifier (``--model linear``): one sigmoid unit over the spec's
preprocessed features, written as ``matchstream.linear/1``.

With :mod:`matchstream.ml.dnn` and :mod:`matchstream.ml.tfmodel`, the only modules of
matchstream that import TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from matchstream.ml.model_json import linear_dict
from matchstream.ml.numpy_scorer import NumpyScorer
from matchstream.ml.spec import FeatureSpec
from matchstream.ml.tfmodel import TfClassifier, tf, variable

if TYPE_CHECKING:
    from matchstream.ml.classifier import Classifier

__all__ = ["LinearModel", "TrainingParams"]


@dataclass(frozen=True)
class TrainingParams:
    """How one batch is learned; the defaults reach scikit-learn's AUC in 7 batches of 500.

    ``epochs`` passes over the batch in minibatches of ``minibatch`` rows with Adam; ``l2`` is
    the penalty on the weights (not the bias).
    """

    learning_rate: float = 0.01
    epochs: int = 5
    minibatch: int = 64
    l2: float = 1e-3
    seed: int = 0


class LinearModel(TfClassifier):
    estimator = "linear"

    def __init__(self, spec: FeatureSpec, params: TrainingParams = TrainingParams()) -> None:
        # All zero: an untrained model answers 0.5 for every row.
        self.weights = variable(np.zeros((self.input_width(spec), 1)), "weights")
        self.bias = variable(np.zeros(1), "bias")
        # The names and their order are optimizer.npz's keys since the first version.
        super().__init__(spec, params, {"weights": self.weights, "bias": self.bias},
                         [self.weights])

    def set_from_scorer(self, scorer: NumpyScorer) -> None:
        """Load weights from a linear ``model.json`` (optimizer state stays fresh)."""
        ((weights, bias),) = scorer.layers
        self.weights.assign(weights.reshape(-1, 1))
        self.bias.assign(bias)

    def _forward(self, x: Any) -> Any:
        return tf.squeeze(tf.matmul(x, self.weights), axis=1) + self.bias

    def model_dict(self, threshold: float, version: int) -> dict[str, Any]:
        return linear_dict(self.spec, self.weights.numpy().ravel().tolist(),
                           float(self.bias.numpy()[0]), threshold, version)


if TYPE_CHECKING:  # mypy holds the class to the contract the trainer relies on
    _CONFORMS: type[Classifier] = LinearModel

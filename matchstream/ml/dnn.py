"""The TensorFlow MLP (``--model dnn``): one hidden layer of ReLU units and a sigmoid output over
the same preprocessed features as the linear model, written as ``matchstream.mlp/1``.

Initialised deterministically from ``MlpParams.seed`` with NumPy (Glorot-uniform hidden weights,
so the same bytes in give the same version out on any machine), the output weights at zero so
an untrained model answers 0.5 for every row, as the linear one does: the first batch's
prequential metrics then mean the same for both estimators. Trained like the linear model
(:class:`~matchstream.ml.tfmodel.TfClassifier`): Adam, L2 on both weight matrices (not the
biases), class-weighted log loss, the epoch loop in one graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from matchstream.ml.linear import TrainingParams
from matchstream.ml.model_json import mlp_dict
from matchstream.ml.spec import FeatureSpec
from matchstream.ml.tfmodel import TfClassifier, tf, variable

if TYPE_CHECKING:
    from matchstream.ml.classifier import Classifier

__all__ = ["MlpModel", "MlpParams"]


@dataclass(frozen=True)
class MlpParams(TrainingParams):
    """How one batch is learned: the linear model's epochs, minibatch and L2, plus the hidden
    width; the learning rate is the middle of 0.001 / 0.003 / 0.01: at 0.01 the last versions
    chase the last batch (held-out AUC 0.78), at 0.001 five epochs per batch learn too little
    (0.81). The sweep is in docs/benchmarks.md ("Estimators: linear and dnn")."""

    learning_rate: float = 0.003
    hidden: int = 16


class MlpModel(TfClassifier):
    estimator = "dnn"

    def __init__(self, spec: FeatureSpec, params: MlpParams = MlpParams()) -> None:
        width = self.input_width(spec)
        rng = np.random.default_rng([params.seed, width, params.hidden])
        limit = np.sqrt(6.0 / (width + params.hidden))
        self.hidden_weights = variable(rng.uniform(-limit, limit, (width, params.hidden)),
                                       "hidden_weights")
        self.hidden_bias = variable(np.zeros(params.hidden), "hidden_bias")
        self.output_weights = variable(np.zeros((params.hidden, 1)), "output_weights")
        self.output_bias = variable(np.zeros(1), "output_bias")
        super().__init__(spec, params,
                         {"hidden_weights": self.hidden_weights,
                          "hidden_bias": self.hidden_bias,
                          "output_weights": self.output_weights,
                          "output_bias": self.output_bias},
                         [self.hidden_weights, self.output_weights])

    def _forward(self, x: Any) -> Any:
        hidden = tf.nn.relu(tf.matmul(x, self.hidden_weights) + self.hidden_bias)
        return tf.squeeze(tf.matmul(hidden, self.output_weights), axis=1) + self.output_bias

    def model_dict(self, threshold: float, version: int) -> dict[str, Any]:
        return mlp_dict(self.spec, [
            (self.hidden_weights.numpy().tolist(), self.hidden_bias.numpy().tolist(), "relu"),
            (self.output_weights.numpy().tolist(), self.output_bias.numpy().tolist(), "sigmoid"),
        ], threshold, version)


if TYPE_CHECKING:  # mypy holds the class to the contract the trainer relies on
    _CONFORMS: type[Classifier] = MlpModel

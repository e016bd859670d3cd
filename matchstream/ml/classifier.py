"""The classifier contract: what the trainer needs from an estimator (``train.py --model``).

:class:`~matchstream.ml.training.Trainer` knows nothing else about a model: it scores a batch,
learns it, saves the state (``optimizer.npz``) and the portable form (``model.json``), and
restores the state of the parent version before the next batch. Implementations live one per
module (:mod:`matchstream.ml.linear`, :mod:`matchstream.ml.dnn`) and are the only modules that
import TensorFlow; :mod:`matchstream.ml.estimators` maps the ``--model`` names to them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np

    from matchstream.ml.spec import FeatureSpec

__all__ = ["Classifier"]


class Classifier(Protocol):
    """A binary classifier over a spec's features, trained batch by batch, float64 throughout.

    Everything it does is deterministic: the same state, batch and ``seed`` give the same
    weights to the last bit, which is what makes warm and cold trainers (and a retry) agree.
    """

    spec: FeatureSpec
    estimator: str  # its --model name, recorded in every version

    @property
    def params(self) -> Any:
        """The training settings, a dataclass (recorded in metadata.json)."""

    def learn(self, numeric: np.ndarray, categorical: np.ndarray, labels: np.ndarray,
              sample_weight: np.ndarray, *, seed: int = 0) -> float:
        """Continue training on one batch (raw numbers with NaN for empty fields, category
        codes with -1 for empty); returns the last minibatch's loss."""

    def predict_proba(self, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        """The probability of label 1 for each row."""

    def get_state(self) -> dict[str, np.ndarray]:
        """Every variable, optimizer slots included, so training continues exactly from it."""

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        """Load what :meth:`get_state` returned (from this model or one with the same spec)."""

    def model_dict(self, threshold: float, version: int) -> dict[str, Any]:
        """The ``model.json`` content of the current weights (:mod:`matchstream.ml.model_json`),
        which the scorers apply without TensorFlow."""

"""The estimators ``train.py --model`` chooses from, the module that implements each, and the
rule that a model directory holds one of them.

Standard library only: train.py's argument parser reads :data:`ESTIMATORS` on its fast path,
and the module of an estimator (TensorFlow with it) is imported only when a model is built.

>>> ESTIMATORS, DEFAULT_ESTIMATOR
(('linear', 'dnn'), 'linear')
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from matchstream.ml.errors import EstimatorMismatch
from matchstream.ml.model_json import estimator_of
from matchstream.ml.store import ModelStore, version_name
from matchstream.ml.tfimport import import_model_module

if TYPE_CHECKING:
    from matchstream.ml.classifier import Classifier
    from matchstream.ml.spec import FeatureSpec

__all__ = ["DEFAULT_ESTIMATOR", "ESTIMATORS", "build", "held_by", "refuse_other"]

# name -> (module, class); the module imports TensorFlow
_REGISTRY = {"linear": ("matchstream.ml.linear", "LinearModel"),
             "dnn": ("matchstream.ml.dnn", "MlpModel")}
ESTIMATORS = tuple(_REGISTRY)
DEFAULT_ESTIMATOR = "linear"


def build(estimator: str, spec: FeatureSpec) -> Classifier:
    """A fresh model of ``estimator`` for ``spec``, initialised from its default seed."""
    module_name, class_name = _REGISTRY[estimator]
    model: Classifier = getattr(import_model_module(module_name), class_name)(spec)
    return model


def held_by(store: ModelStore, version: int) -> str:
    """The estimator of a version, from its ``model.json`` format (what every version has,
    those written before there were two estimators included)."""
    return estimator_of(store.read_json(version, "model.json"))


def refuse_other(store: ModelStore, version: int, estimator: str,
                 model_json: dict[str, Any] | None = None) -> None:
    """EstimatorMismatch unless ``version`` of ``store`` was written by ``estimator``;
    ``model_json`` is the version's ``model.json`` when the caller has read it already."""
    data = store.read_json(version, "model.json") if model_json is None else model_json
    held = estimator_of(data)
    if held != estimator:
        fmt = data.get("format")
        raise EstimatorMismatch(
            f"holds {held} model versions (newest {version_name(version)}, format {fmt}), "
            f"not {estimator}: a model directory keeps one estimator. Train --model "
            f"{estimator} into a new model directory (--model-dir), or keep --model {held} "
            "here", path=store.path)

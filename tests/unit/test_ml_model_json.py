"""model.json: both formats parse, malformed ones are refused, and the two scorers apply an MLP
as computed here by hand (no TensorFlow: that comparison is tests/transforms/test_parity.py)."""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pytest

from matchstream.ml.model_json import (
    LINEAR_FORMAT,
    MLP_FORMAT,
    LinearModel,
    MlpModel,
    estimator_of,
    linear_dict,
    mlp_dict,
    parse_model,
)
from matchstream.ml.numpy_scorer import NumpyScorer
from matchstream.ml.pure_scorer import SMALL_BATCH, SMALL_MLP_BATCH, PureScorer, small_batch
from matchstream.ml.spec import FeatureSpec

SPEC = FeatureSpec.from_dict({
    "id": "id", "label": "y", "columns": ["id", "y", "a", "b", "c"],
    "numeric": {"a": {"mean": 1.0, "std": 2.0}, "b": {"mean": -1.0, "std": 0.5}},
    "categorical": {"c": {"vocabulary": ["u", "v", "w"]}}})
# 5 inputs (a, b, c=u, c=v, c=w) -> 2 ReLU units -> 1 sigmoid unit
HIDDEN = [[0.5, -1.0], [1.5, 0.25], [0.0, 2.0], [-3.0, 0.0], [1.0, 1.0]]
MLP = mlp_dict(SPEC, [(HIDDEN, [0.1, -0.2], "relu"), ([[2.0], [-1.5]], [0.3], "sigmoid")],
               0.6, 4)


def by_hand(a: float, b: float, code: int) -> float:
    """The MLP above on one row: standardise, one-hot, ReLU, sigmoid."""
    x = [(a - 1.0) / 2.0, (b + 1.0) / 0.5, *(1.0 if code == k else 0.0 for k in range(3))]
    h = [max(0.0, bias + sum(xi * row[j] for xi, row in zip(x, HIDDEN, strict=True)))
         for j, bias in enumerate([0.1, -0.2])]
    z = 0.3 + 2.0 * h[0] - 1.5 * h[1]
    return 1.0 / (1.0 + math.exp(-z))


def test_the_mlp_format_parses_into_its_layers() -> None:
    model = parse_model(MLP)
    assert isinstance(model, MlpModel) and estimator_of(MLP) == "dnn"
    assert model.inputs == ("a", "b", "c=u", "c=v", "c=w")
    assert [(len(layer.weights), len(layer.biases), layer.activation)
            for layer in model.layers] == [(5, 2, "relu"), (2, 1, "sigmoid")]
    assert (model.threshold, model.version, MLP["format"]) == (0.6, 4, MLP_FORMAT)


def test_the_linear_format_is_unchanged() -> None:
    data = linear_dict(SPEC, [0.5, -0.25, 1.0, 2.0, 3.0], -0.75, 0.4, 9)
    assert data == {
        "format": LINEAR_FORMAT, "version": 9, "spec": SPEC.to_dict(),
        "weights": {"numeric": {"a": 0.5, "b": -0.25},
                    "categorical": {"c": {"u": 1.0, "v": 2.0, "w": 3.0}}},
        "bias": -0.75, "threshold": 0.4}
    model = parse_model(data)
    assert isinstance(model, LinearModel) and estimator_of(data) == "linear"
    assert model.categorical_weights == ((1.0, 2.0, 3.0),)
    assert small_batch(data) == SMALL_BATCH and small_batch(MLP) == SMALL_MLP_BATCH


def broken(change: Any) -> dict[str, Any]:
    data = copy.deepcopy(MLP)
    change(data)
    return data


@pytest.mark.parametrize(("data", "message"), [
    (broken(lambda d: d.update(format="matchstream.mlp/2")), "none of"),
    (broken(lambda d: d["layers"][0]["weights"].pop()), "layer 1: weights are not 5 rows"),
    (broken(lambda d: d["layers"][0]["weights"][2].append(1.0)), "layer 1: weights"),
    (broken(lambda d: d["layers"][1]["weights"].pop()), "layer 2: weights are not 2 rows"),
    (broken(lambda d: d["layers"][0].update(activation="tanh")), "'tanh' is not relu"),
    (broken(lambda d: d["layers"][1].update(activation="relu")), "is not sigmoid"),
    (broken(lambda d: d.update(layers=[])), "no layers"),
    (broken(lambda d: d.update(inputs=["b", "a", "c=u", "c=v", "c=w"])), "not the spec's"),
    (broken(lambda d: d["layers"][1].update(weights=[[1.0, 2.0], [3.0, 4.0]],
                                            biases=[0.0, 0.0])), "2 units, not 1"),
])
def test_a_malformed_mlp_is_refused(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_model(data)


@pytest.mark.parametrize("data", [broken(lambda d: d.pop("layers")),
                                  broken(lambda d: d.pop("threshold"))])
def test_a_missing_key_is_a_key_error(data: dict[str, Any]) -> None:
    with pytest.raises(KeyError):
        parse_model(data)


def test_both_scorers_apply_the_mlp_as_by_hand() -> None:
    rows = [(3.0, -1.0, 0), (float("nan"), 0.5, 1), (-4.0, -3.0, -1), (1.0, float("nan"), 2)]
    expected = [by_hand(1.0 if a != a else a, -1.0 if b != b else b, c) for a, b, c in rows]
    numeric = np.array([[a, b] for a, b, _ in rows])
    categorical = np.array([[c] for _, _, c in rows])
    np_probs = NumpyScorer.from_dict(MLP).predict_proba(numeric, categorical)
    pure = PureScorer.from_dict(MLP)
    pure_probs = [pure.predict_one([a, b], [c]) for a, b, c in rows]
    assert np.abs(np_probs - expected).max() < 1e-12
    assert np.abs(np.array(pure_probs) - expected).max() < 1e-12
    assert len(set(np.round(expected, 6))) == len(rows)  # the rows really differ


def test_both_scorers_apply_a_linear_model_like_before() -> None:
    data = linear_dict(SPEC, [0.5, -0.25, 1.0, 2.0, 3.0], -0.75, 0.4, 9)
    numeric, categorical = np.array([[3.0, 0.0]]), np.array([[2]])
    z = -0.75 + 0.5 * (3.0 - 1.0) / 2.0 - 0.25 * (0.0 + 1.0) / 0.5 + 3.0
    assert NumpyScorer.from_dict(data).predict_proba(numeric, categorical)[0] == pytest.approx(
        1.0 / (1.0 + math.exp(-z)), abs=1e-15)
    assert PureScorer.from_dict(data).predict_one([3.0, 0.0], [2]) == pytest.approx(
        1.0 / (1.0 + math.exp(-z)), abs=1e-15)

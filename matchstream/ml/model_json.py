"""``model.json``, the portable form of a model version: written by the trainers, parsed once for
both scorers, which apply it without TensorFlow.

Two formats, one per estimator; the format name is how a version records its estimator:

* ``matchstream.linear/1`` (``--model linear``): the spec with its preprocessing constants, one
  weight per numeric feature and per category token, the bias and the decision threshold.
* ``matchstream.mlp/1`` (``--model dnn``): the spec, the names of the input columns (the
  preprocessed features, in :func:`~matchstream.ml.features.design_matrix` order), then the
  layers, each ``{"weights": [[...] per input], "biases": [...], "activation": ...}``: hidden
  layers ``relu``, the last one a single ``sigmoid`` unit.

Only the standard library is used, so the plain-Python scorer can read it without importing
NumPy.

>>> spec = {"id": "id", "label": "y", "columns": ["id", "y", "x"],
...         "numeric": {"x": {"mean": 0, "std": 1}}}
>>> data = mlp_dict(FeatureSpec.from_dict(spec), [([[1.0, -1.0]], [0.0, 0.5], "relu"),
...                                              ([[2.0], [3.0]], [0.1], "sigmoid")], 0.4, 7)
>>> model = parse_model(data)
>>> estimator_of(data), model.inputs, [layer.activation for layer in model.layers]
('dnn', ('x',), ['relu', 'sigmoid'])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from matchstream.ml.spec import FeatureSpec

__all__ = ["FORMATS", "LINEAR_FORMAT", "MLP_FORMAT", "MODEL_FORMAT", "Layer", "LinearModel",
           "MlpModel", "estimator_of", "input_names", "linear_dict", "mlp_dict", "parse_model"]

LINEAR_FORMAT = "matchstream.linear/1"
MLP_FORMAT = "matchstream.mlp/1"
MODEL_FORMAT = LINEAR_FORMAT  # the name before there were two
# format -> the --model name that writes it
FORMATS = {LINEAR_FORMAT: "linear", MLP_FORMAT: "dnn"}
_HIDDEN_ACTIVATIONS = ("relu",)


@dataclass(frozen=True)
class LinearModel:
    spec: FeatureSpec
    numeric_weights: tuple[float, ...]  # in spec.numeric order
    categorical_weights: tuple[tuple[float, ...], ...]  # per feature, in vocabulary order
    bias: float
    threshold: float
    version: int

    estimator = "linear"


@dataclass(frozen=True)
class Layer:
    """``activation(inputs @ weights + biases)``; ``weights[i][j]`` joins input i to unit j."""

    weights: tuple[tuple[float, ...], ...]
    biases: tuple[float, ...]
    activation: str


@dataclass(frozen=True)
class MlpModel:
    spec: FeatureSpec
    inputs: tuple[str, ...]  # input_names(spec): what each row of the first layer weighs
    layers: tuple[Layer, ...]
    threshold: float
    version: int

    estimator = "dnn"


def estimator_of(data: dict[str, Any]) -> str:
    """The estimator (``--model`` name) a parsed ``model.json`` belongs to; ValueError if its
    format is none of ours."""
    fmt = data.get("format")
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is none of {', '.join(map(repr, FORMATS))}")
    return FORMATS[fmt]


def parse_model(data: dict[str, Any]) -> LinearModel | MlpModel:
    """Build from a parsed ``model.json``; KeyError/ValueError/TypeError mean a corrupt file."""
    if estimator_of(data) == "dnn":
        return _parse_mlp(data)
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


def _parse_mlp(data: dict[str, Any]) -> MlpModel:
    spec = FeatureSpec.from_dict(data["spec"])
    inputs = tuple(str(name) for name in data["inputs"])
    if inputs != input_names(spec):
        raise ValueError(f"inputs {list(inputs)[:4]}... are not the spec's features "
                         f"{list(input_names(spec))[:4]}...")
    layers = tuple(
        Layer(tuple(tuple(float(w) for w in row) for row in layer["weights"]),
              tuple(float(b) for b in layer["biases"]), str(layer["activation"]))
        for layer in data["layers"])
    if not layers:
        raise ValueError("no layers")
    width = len(inputs)
    for number, layer in enumerate(layers, 1):
        last = number == len(layers)
        if len(layer.weights) != width or any(len(row) != len(layer.biases)
                                              for row in layer.weights):
            raise ValueError(f"layer {number}: weights are not {width} rows of "
                             f"{len(layer.biases)} (one per bias)")
        expected = ("sigmoid",) if last else _HIDDEN_ACTIVATIONS
        if layer.activation not in expected:
            raise ValueError(f"layer {number}: activation {layer.activation!r} is not "
                             f"{' or '.join(expected)}")
        width = len(layer.biases)
    if width != 1:
        raise ValueError(f"the last layer has {width} units, not 1")
    return MlpModel(spec, inputs, layers, float(data["threshold"]), int(data["version"]))


def input_names(spec: FeatureSpec) -> tuple[str, ...]:
    """The preprocessed features, in design-matrix order: each numeric feature, then
    ``name=token`` per category token.

    >>> spec = FeatureSpec.from_dict({"id": "id", "label": "y", "columns": ["id", "y", "a", "c"],
    ...                               "numeric": {"a": {}}, "categorical": {"c": {"vocabulary":
    ...                               ["u", "v"]}}})
    >>> input_names(spec)
    ('a', 'c=u', 'c=v')
    """
    return (*(f.name for f in spec.numeric),
            *(f"{f.name}={token}" for f in spec.categorical for token in f.vocabulary))


def linear_dict(spec: FeatureSpec, weights: Sequence[float], bias: float, threshold: float,
                version: int) -> dict[str, Any]:
    """The ``matchstream.linear/1`` content for a weight vector in design-matrix order."""
    values = [float(v) for v in weights]
    numeric = {f.name: values[i] for i, f in enumerate(spec.numeric)}
    categorical: dict[str, dict[str, float]] = {}
    offset = len(spec.numeric)
    for feature in spec.categorical:
        categorical[feature.name] = dict(zip(feature.vocabulary,
                                             values[offset:offset + len(feature.vocabulary)],
                                             strict=True))
        offset += len(feature.vocabulary)
    return {"format": LINEAR_FORMAT, "version": version, "spec": spec.to_dict(),
            "weights": {"numeric": numeric, "categorical": categorical},
            "bias": float(bias), "threshold": float(threshold)}


def mlp_dict(spec: FeatureSpec,
             layers: Sequence[tuple[Sequence[Sequence[float]], Sequence[float], str]],
             threshold: float, version: int) -> dict[str, Any]:
    """The ``matchstream.mlp/1`` content for ``(weights, biases, activation)`` per layer."""
    return {"format": MLP_FORMAT, "version": version, "spec": spec.to_dict(),
            "inputs": list(input_names(spec)),
            "layers": [{"weights": [[float(w) for w in row] for row in weights],
                        "biases": [float(b) for b in biases], "activation": activation}
                       for weights, biases, activation in layers],
            "threshold": float(threshold)}

"""The feature spec: which CSV column is what, shared by training and scoring.

A spec is a JSON file (format ``matchstream.features/1``, see ``docs/model.md``)::

    {"format": "matchstream.features/1", "id": "id", "label": "match",
     "columns": ["id", "match", "attr", "race"],
     "numeric": {"attr": {"mean": 6.2, "std": 1.9}},
     "categorical": {"race": {"vocabulary": ["1", "2", "3"]}}}

``columns`` is the order of the fields in a training row; scoring rows carry the same columns
without the label. Columns that are neither id, label, numeric nor categorical are carried in the
CSV but ignored by the model. A numeric feature without ``mean``/``std`` gets them from the first
training batch, frozen into the first model version.

>>> spec = FeatureSpec.from_dict({"id": "id", "label": "y", "columns": ["id", "y", "x"],
...                               "numeric": {"x": {}}})
>>> spec.input_columns(with_label=False), spec.needs_stats
(('id', 'x'), True)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from matchstream.ml.errors import SpecError

__all__ = ["FORMAT", "CategoricalFeature", "FeatureSpec", "NumericFeature"]

FORMAT = "matchstream.features/1"


@dataclass(frozen=True)
class NumericFeature:
    """A number; an empty field becomes ``mean``, then the value is ``(x - mean) / std``."""

    name: str
    mean: float | None = None
    std: float | None = None


@dataclass(frozen=True)
class CategoricalFeature:
    """A token from ``vocabulary``, one-hot encoded; an empty field encodes as all zeros."""

    name: str
    vocabulary: tuple[str, ...]


@dataclass(frozen=True)
class FeatureSpec:
    id: str
    label: str
    columns: tuple[str, ...]
    numeric: tuple[NumericFeature, ...]
    categorical: tuple[CategoricalFeature, ...]
    description: str = ""

    @classmethod
    def load(cls, path: Path | str) -> FeatureSpec:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise SpecError(f"cannot read: {exc.strerror or exc}", path=path) from exc
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SpecError(f"not valid JSON: {exc}", path=path) from exc
        return cls.from_dict(data, path=path)

    @classmethod
    def from_dict(cls, data: Any, *, path: Path | str = "<spec>") -> FeatureSpec:
        if not isinstance(data, dict):
            raise SpecError("top level must be a JSON object", path=path)
        fmt = data.get("format", FORMAT)
        if fmt != FORMAT:
            raise SpecError(f"format {fmt!r} is not {FORMAT!r}", path=path)
        try:
            columns = tuple(str(c) for c in data["columns"])
            id_col, label = str(data["id"]), str(data["label"])
            numeric = tuple(
                NumericFeature(name, _number(v.get("mean"), name, path), _std(v, name, path))
                for name, v in data.get("numeric", {}).items()
            )
            categorical = tuple(
                CategoricalFeature(name, tuple(str(t) for t in v["vocabulary"]))
                for name, v in data.get("categorical", {}).items()
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise SpecError(f"missing or malformed entry {exc}", path=path) from exc
        spec = cls(id_col, label, columns, numeric, categorical, str(data.get("description", "")))
        spec._validate(path)
        return spec

    def _validate(self, path: Path | str) -> None:
        names = [self.id, self.label, *self.feature_names]
        seen = set(self.columns)
        if len(seen) != len(self.columns):
            raise SpecError("a column is listed twice in 'columns'", path=path)
        for name in names:
            if name not in seen:
                raise SpecError(f"{name!r} is not in 'columns'", path=path)
        if len(set(names)) != len(names):
            raise SpecError("a column is used twice (id, label, numeric, categorical)", path=path)
        if not self.feature_names:
            raise SpecError("no numeric or categorical features", path=path)
        for cat in self.categorical:
            if not cat.vocabulary or len(set(cat.vocabulary)) != len(cat.vocabulary):
                raise SpecError(f"vocabulary of {cat.name!r} is empty or repeats", path=path)
            if "" in cat.vocabulary:
                raise SpecError(f"vocabulary of {cat.name!r} has '' (means missing)", path=path)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.numeric) + tuple(f.name for f in self.categorical)

    @property
    def needs_stats(self) -> bool:
        return any(f.mean is None or f.std is None for f in self.numeric)

    def input_columns(self, *, with_label: bool) -> tuple[str, ...]:
        """The fields of a training row (``with_label``) or of a scoring row."""
        if with_label:
            return self.columns
        return tuple(c for c in self.columns if c != self.label)

    def with_stats(self, means: list[float], stds: list[float]) -> FeatureSpec:
        """Fill in the numeric features lacking constants; present ones are kept."""
        numeric = tuple(
            replace(f, mean=f.mean if f.mean is not None else m,
                    std=f.std if f.std is not None else (s if s > 0 else 1.0))
            for f, m, s in zip(self.numeric, means, stds, strict=True)
        )
        return replace(self, numeric=numeric)

    def to_dict(self) -> dict[str, Any]:
        numeric: dict[str, dict[str, float]] = {}
        for f in self.numeric:
            numeric[f.name] = {}
            if f.mean is not None:
                numeric[f.name]["mean"] = f.mean
            if f.std is not None:
                numeric[f.name]["std"] = f.std
        return {
            "format": FORMAT,
            "description": self.description,
            "id": self.id,
            "label": self.label,
            "columns": list(self.columns),
            "numeric": numeric,
            "categorical": {c.name: {"vocabulary": list(c.vocabulary)} for c in self.categorical},
        }


def _number(value: Any, name: str, path: Path | str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SpecError(f"numeric feature {name!r}: {value!r} is not a finite number", path=path)
    return float(value)


def _std(entry: Any, name: str, path: Path | str) -> float | None:
    std = _number(entry.get("std"), name, path)
    if std is not None and std <= 0:
        raise SpecError(f"numeric feature {name!r}: std must be > 0, got {std}", path=path)
    return std

"""Drift of a model's inputs and of its error, measured on every training batch.

Two signals, both computed before the batch is learnt (like the batch's other metrics) and
both carried from version to version in ``drift.json``, so a batch's figures depend only on its
parent version and its own rows: a retried batch replays the same numbers, and the warm and the
cold trainer agree.

- **Feature drift**, the population stability index (PSI) of every feature between what the
  model was built on and the most recent rows. Each feature is cut into fixed bins (numeric:
  the deciles of a normal distribution with the spec's mean and std, plus one bin for empty
  fields; categorical: one bin per token, plus empty). The *window* holds the counts of the
  latest batches, at least :attr:`DriftParams.window_rows` rows; counts older than that move
  into the *reference*, which therefore holds every row the model learnt before the window.
  PSI compares window and reference once both hold enough rows (before that it is NULL):
  on per-batch counts alone a batch of 50 rows would read as drift by sampling noise.
- **Error drift**, the Page-Hinkley test for an increase in the mean of the per-row prequential
  log loss (the parent's loss on rows it has not seen), in message order. It is the one-sided
  ("up") form of :class:`river.drift.PageHinkley`, and the tests hold the two to the same
  detections; it is written here because its state must be plain JSON in a model version,
  which river's objects are not. After a detection the test starts again, as river's does.

The state is plain JSON, a few kilobytes: bin counts and five numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from matchstream.ml.spec import FeatureSpec

__all__ = ["DriftMonitor", "DriftParams", "DriftReport", "PageHinkley", "population_stability"]

DRIFT_FORMAT = "matchstream.drift/1"
# Normal deciles: with the spec's mean and std they split a normal feature into ten equal bins.
_DECILES = (-1.2816, -0.8416, -0.5244, -0.2533, 0.0, 0.2533, 0.5244, 0.8416, 1.2816)
# A bin one side never saw counts as this share, so the logarithm stays finite; a bin neither
# side saw contributes nothing.
_FLOOR = 1e-4


@dataclass(frozen=True)
class DriftParams:
    """When the two detectors speak; the defaults are what the synthetic-stream test checks.

    ``psi_alarm`` 0.25 is the usual "major shift" line of PSI. Page-Hinkley's ``delta`` (the
    change of mean loss tolerated, per row) and ``threshold`` (how far the cumulative excess
    may climb) are set so that the noise of a stationary loss stream (std about 0.6) almost
    never climbs 25, while a rise of the mean loss by 0.3 is detected in about 100 rows.
    """

    window_rows: int = 500
    min_reference_rows: int = 500
    psi_alarm: float = 0.25
    ph_delta: float = 0.05
    ph_threshold: float = 25.0
    ph_min_rows: int = 100
    ph_alpha: float = 1.0
    loss_cap: float = 10.0  # one confident mistake must not raise the alarm alone


@dataclass(frozen=True)
class DriftReport:
    """What one batch showed. ``psi`` is per feature (None until window and reference are
    full); ``error_drift_at`` the index in the batch's usable rows where Page-Hinkley fired;
    ``error_drift_score`` the highest Page-Hinkley statistic during the batch."""

    psi: dict[str, float] | None
    feature_drift: bool
    error_drift_at: int | None
    error_drift_score: float

    @property
    def error_drift(self) -> bool:
        return self.error_drift_at is not None

    @property
    def psi_max(self) -> float | None:
        return max(self.psi.values()) if self.psi else None

    def worst(self, count: int = 3) -> str | None:
        """The features that moved most, for a metrics row.

        >>> DriftReport({"a": 0.01, "b": 0.4, "c": 0.2}, True, None, 0.0).worst(2)
        'b 0.400; c 0.200'
        """
        if not self.psi:
            return None
        ranked = sorted(self.psi.items(), key=lambda item: (-item[1], item[0]))[:count]
        return "; ".join(f"{name} {value:.3f}" for name, value in ranked)


def population_stability(reference: np.ndarray, window: np.ndarray) -> float:
    """PSI of two count vectors over the same bins.

    >>> population_stability(np.array([50, 50]), np.array([5, 5]))
    0.0
    >>> round(population_stability(np.array([90, 10]), np.array([50, 50])), 3)
    0.879
    """
    e = np.maximum(reference / reference.sum(), _FLOOR)
    a = np.maximum(window / window.sum(), _FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass
class PageHinkley:
    """Page-Hinkley for an increase of the mean (river's ``mode="up"``), state in plain fields.

    >>> ph = PageHinkley(DriftParams(ph_min_rows=3, ph_threshold=1.0, ph_delta=0.0))
    >>> [ph.update(x) for x in [0, 0, 0, 0, 5]]
    [False, False, False, False, True]
    """

    params: DriftParams
    n: int = 0
    mean: float = 0.0
    cumulative: float = 0.0
    minimum: float | None = None
    detected: bool = False

    def update(self, x: float) -> bool:
        if self.detected:
            self.n, self.mean, self.cumulative, self.minimum = 0, 0.0, 0.0, None
            self.detected = False
        self.n += 1
        self.mean += (x - self.mean) / self.n
        self.cumulative = (self.params.ph_alpha * self.cumulative + (x - self.mean)
                           - self.params.ph_delta)
        if self.minimum is None or self.cumulative < self.minimum:
            self.minimum = self.cumulative
        self.detected = self.n >= self.params.ph_min_rows and self.score > self.params.ph_threshold
        return self.detected

    @property
    def score(self) -> float:
        """How far the cumulative excess is above its lowest point; the alarm is at threshold."""
        return 0.0 if self.minimum is None else self.cumulative - self.minimum

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "mean": self.mean, "cumulative": self.cumulative,
                "minimum": self.minimum, "detected": self.detected}

    @classmethod
    def from_dict(cls, params: DriftParams, data: dict[str, Any]) -> PageHinkley:
        minimum = data["minimum"]
        return cls(params, int(data["n"]), float(data["mean"]), float(data["cumulative"]),
                   None if minimum is None else float(minimum), bool(data["detected"]))


class DriftMonitor:
    """Both detectors for one model directory, continued from a parent version's state."""

    def __init__(self, spec: FeatureSpec, params: DriftParams = DriftParams(),
                 state: dict[str, Any] | None = None) -> None:
        self.spec = spec
        self.params = params
        self.names = spec.feature_names
        self._sizes = [len(_edges(f.mean, f.std)) + 2 for f in spec.numeric]
        self._sizes += [len(f.vocabulary) + 1 for f in spec.categorical]
        if state is None:
            self.reference = [np.zeros(size, dtype=np.int64) for size in self._sizes]
            self.window: list[tuple[int, list[np.ndarray]]] = []
            self.page_hinkley = PageHinkley(params)
        else:
            self._load(state)

    def observe(self, numeric: np.ndarray, categorical: np.ndarray,
                losses: Sequence[float] | np.ndarray) -> DriftReport:
        """Add one batch (its usable rows, in message order, and the parent's loss on each)."""
        self.window.append((len(losses), self._counts(numeric, categorical)))
        while len(self.window) > 1 and self._window_rows() - self.window[0][0] >= \
                self.params.window_rows:
            _, oldest = self.window.pop(0)
            self.reference = [r + c for r, c in zip(self.reference, oldest, strict=True)]
        psi = self._psi()
        detected_at = None
        highest = self.page_hinkley.score if not self.page_hinkley.detected else 0.0
        for index, loss in enumerate(losses):
            if self.page_hinkley.update(min(float(loss), self.params.loss_cap)) and \
                    detected_at is None:
                detected_at = index
            highest = max(highest, self.page_hinkley.score)
        feature_drift = psi is not None and max(psi.values()) >= self.params.psi_alarm
        return DriftReport(psi, feature_drift, detected_at, highest)

    def _window_rows(self) -> int:
        return sum(rows for rows, _ in self.window)

    def _psi(self) -> dict[str, float] | None:
        reference_rows = int(self.reference[0].sum()) if self.reference else 0
        if reference_rows < self.params.min_reference_rows or \
                self._window_rows() < self.params.window_rows:
            return None
        window = [np.sum([counts[i] for _, counts in self.window], axis=0)
                  for i in range(len(self._sizes))]
        return {name: population_stability(ref, win)
                for name, ref, win in zip(self.names, self.reference, window, strict=True)}

    def _counts(self, numeric: np.ndarray, categorical: np.ndarray) -> list[np.ndarray]:
        counts = []
        for j, feature in enumerate(self.spec.numeric):
            edges = _edges(feature.mean, feature.std)
            column = numeric[:, j]
            bins = np.where(np.isnan(column), len(edges) + 1,
                            np.searchsorted(edges, column, side="right"))
            counts.append(np.bincount(bins, minlength=len(edges) + 2))
        for j, cat in enumerate(self.spec.categorical):
            codes = categorical[:, j]
            empty = len(cat.vocabulary)
            counts.append(np.bincount(np.where(codes < 0, empty, codes), minlength=empty + 1))
        return [c.astype(np.int64) for c in counts]

    # -- state ---------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON state a version carries (``drift.json``)."""
        return {
            "format": DRIFT_FORMAT,
            "features": list(self.names),
            "reference": [c.tolist() for c in self.reference],
            "window": [{"rows": rows, "counts": [c.tolist() for c in counts]}
                       for rows, counts in self.window],
            "page_hinkley": self.page_hinkley.to_dict(),
        }

    def _load(self, state: dict[str, Any]) -> None:
        if state.get("format") != DRIFT_FORMAT or list(state["features"]) != list(self.names):
            raise ValueError("drift state of another format or feature list")
        self.reference = [np.array(c, dtype=np.int64) for c in state["reference"]]
        self.window = [(int(w["rows"]), [np.array(c, dtype=np.int64) for c in w["counts"]])
                       for w in state["window"]]
        if [len(c) for c in self.reference] != self._sizes:
            raise ValueError("drift state's bins do not fit the spec")
        self.page_hinkley = PageHinkley.from_dict(self.params, state["page_hinkley"])


def _edges(mean: float | None, std: float | None) -> np.ndarray:
    """The numeric bin edges; a constant feature (std 0) has one bin besides "empty"."""
    if mean is None or std is None or not math.isfinite(std) or std <= 0:
        return np.array([], dtype=np.float64)
    return np.array([mean + z * std for z in _DECILES], dtype=np.float64)

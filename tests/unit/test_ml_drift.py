"""The drift detectors as pure logic: Page-Hinkley against river's, PSI, state carried over."""

from __future__ import annotations

import json

import numpy as np
import pytest
from river import drift as river_drift

from matchstream.ml.drift import DriftMonitor, DriftParams, PageHinkley, population_stability
from matchstream.ml.spec import FeatureSpec

SPEC = FeatureSpec.from_dict({
    "id": "id", "label": "y", "columns": ["id", "y", "a", "b", "c"],
    "numeric": {"a": {"mean": 0.0, "std": 1.0}, "b": {"mean": 5.0, "std": 2.0}},
    "categorical": {"c": {"vocabulary": ["x", "y", "z"]}},
})


def _rows(rng: np.random.Generator, n: int, b_mean: float = 5.0
          ) -> tuple[np.ndarray, np.ndarray]:
    numeric = np.column_stack([rng.normal(0.0, 1.0, n), rng.normal(b_mean, 2.0, n)])
    numeric[rng.random(n) < 0.05, 0] = np.nan  # empty fields have their own bin
    categorical = rng.choice([0, 1, 2, -1], size=(n, 1), p=[0.5, 0.3, 0.15, 0.05])
    return numeric, categorical


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_page_hinkley_detects_where_rivers_does(seed: int) -> None:
    rng = np.random.default_rng(seed)
    stream = np.r_[rng.exponential(0.5, 3000), rng.exponential(1.0, 3000)]
    params = DriftParams(ph_alpha=1 - 1e-4)
    ours, theirs = PageHinkley(params), river_drift.PageHinkley(
        min_instances=params.ph_min_rows, delta=params.ph_delta, threshold=params.ph_threshold,
        alpha=params.ph_alpha, mode="up")
    ours_at, theirs_at = [], []
    for i, x in enumerate(stream):
        if ours.update(float(x)):
            ours_at.append(i)
        theirs.update(float(x))
        if theirs.drift_detected:
            theirs_at.append(i)
    assert ours_at == theirs_at
    assert ours_at and all(i >= 3000 for i in ours_at[:1]), ours_at


def test_page_hinkley_ignores_a_falling_error() -> None:
    """A model that is still learning: its loss falls, which is no alarm."""
    rng = np.random.default_rng(7)
    ph = PageHinkley(DriftParams())
    losses = rng.exponential(1.0, 5000) * np.linspace(1.0, 0.4, 5000)
    assert not any(ph.update(float(x)) for x in losses)


def test_psi_is_small_on_the_same_distribution_and_names_the_shifted_feature() -> None:
    rng = np.random.default_rng(11)
    monitor = DriftMonitor(SPEC)
    reports = []
    for _ in range(20):  # 2000 rows from one distribution
        numeric, categorical = _rows(rng, 100)
        reports.append(monitor.observe(numeric, categorical, np.full(100, 0.5)))
    assert all(r.psi is None for r in reports[:9])  # window and reference not full yet
    steady = [r for r in reports if r.psi is not None]
    assert steady and all(r.psi_max is not None and r.psi_max < 0.1 for r in steady)
    assert not any(r.feature_drift for r in reports)

    shifted = [monitor.observe(*_rows(rng, 100, b_mean=8.0), np.full(100, 0.5))
               for _ in range(5)]
    assert shifted[-1].feature_drift
    assert shifted[-1].psi is not None and max(shifted[-1].psi, key=shifted[-1].psi.get) == "b"
    assert shifted[-1].worst(1).startswith("b ")  # type: ignore[union-attr]


def test_state_carried_through_json_gives_the_same_reports() -> None:
    """What a chain of versions does: every batch starts from the parent's saved state."""
    rng = np.random.default_rng(5)
    batches = [(*_rows(rng, 80, b_mean=5.0 + i / 4), rng.exponential(0.5 + i / 10, 80))
               for i in range(15)]
    straight = DriftMonitor(SPEC)
    expected = [straight.observe(*b) for b in batches]
    state = None
    for batch, want in zip(batches, expected, strict=True):
        monitor = DriftMonitor(SPEC, state=state)
        assert monitor.observe(*batch) == want
        state = json.loads(json.dumps(monitor.to_dict()))


def test_state_of_another_spec_is_refused() -> None:
    other = FeatureSpec.from_dict({"id": "id", "label": "y", "columns": ["id", "y", "a"],
                                   "numeric": {"a": {"mean": 0.0, "std": 1.0}}})
    with pytest.raises(ValueError, match="feature list"):
        DriftMonitor(other, state=DriftMonitor(SPEC).to_dict())


def test_psi_of_disjoint_bins_is_large_and_of_equal_shares_zero() -> None:
    assert population_stability(np.array([100, 0]), np.array([0, 100])) > 5
    assert population_stability(np.array([30, 70, 0]), np.array([3, 7, 0])) == 0.0

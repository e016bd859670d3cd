from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, log_loss, roc_auc_score

from matchstream.ml.metrics import best_f1_threshold, evaluate


@pytest.mark.parametrize("seed", range(5))
def test_metrics_match_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.random(300) < 0.2).astype(float)
    # Rounded scores make ties, which AUC and average precision must handle like scikit-learn.
    p = np.round(np.clip(0.3 * y + rng.random(300) * 0.7, 0, 1), 2)
    m = evaluate(y, p, 0.5)
    assert m["auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["auc_precision_recall"] == pytest.approx(average_precision_score(y, p))
    assert m["average_loss"] == pytest.approx(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15)))
    assert m["f1"] == pytest.approx(f1_score(y, p >= 0.5))
    assert m["accuracy_baseline"] == pytest.approx(max(y.mean(), 1 - y.mean()))


def test_one_class_batch_has_undefined_metrics() -> None:
    m = evaluate(np.zeros(4), np.array([0.1, 0.2, 0.3, 0.9]), 0.5)
    assert m["auc"] is None and m["auc_precision_recall"] is None and m["recall"] is None
    assert m["accuracy"] == 0.75


def test_best_f1_threshold_maximises_f1() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random(200) < 0.3).astype(float)
    p = np.clip(0.4 * y + rng.random(200) * 0.6, 0, 1)
    t = best_f1_threshold(y, p, 0.5)
    grid = max(f1_score(y, p >= c) for c in np.unique(p))
    assert f1_score(y, p >= t) == pytest.approx(grid)
    assert best_f1_threshold(np.zeros(3), p[:3], 0.7) == 0.7

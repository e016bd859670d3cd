"""Evaluation metrics of one batch, named as TensorFlow's LinearClassifier reported them.

Pure NumPy so they are cheap and checked against scikit-learn in the tests. A metric that is
undefined on a batch (AUC with one class, precision with no positive prediction) is ``None``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["METRIC_NAMES", "best_f1_threshold", "evaluate"]

METRIC_NAMES = (
    "rows", "positives", "accuracy", "accuracy_baseline", "auc", "auc_precision_recall",
    "average_loss", "precision", "recall", "f1", "label_mean", "prediction_mean", "threshold",
)

# Probabilities are clipped before the log so one confident mistake costs a large but finite loss.
_EPS = 1e-15


def evaluate(labels: np.ndarray, probs: np.ndarray, threshold: float) -> dict[str, float | None]:
    """All metrics of ``probs`` against 0/1 ``labels``, predicting 1 when ``probs >= threshold``.

    >>> m = evaluate(np.array([0., 1., 1.]), np.array([.2, .6, .9]), 0.5)
    >>> m["accuracy"], m["auc"], m["recall"]
    (1.0, 1.0, 1.0)
    """
    y = labels.astype(bool)
    n, pos = len(y), int(y.sum())
    if n == 0:
        raise ValueError("cannot evaluate an empty batch")
    predicted = probs >= threshold
    tp = int((predicted & y).sum())
    p = np.clip(probs, _EPS, 1 - _EPS)
    precision = tp / int(predicted.sum()) if predicted.any() else None
    recall = tp / pos if pos else None
    f1 = (2 * precision * recall / (precision + recall)
          if precision is not None and recall is not None and precision + recall > 0 else None)
    return {
        "rows": n,
        "positives": pos,
        "accuracy": float((predicted == y).mean()),
        "accuracy_baseline": max(pos, n - pos) / n,
        "auc": roc_auc(y, probs),
        "auc_precision_recall": average_precision(y, probs),
        "average_loss": float(-(y * np.log(p) + ~y * np.log(1 - p)).mean()),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "label_mean": pos / n,
        "prediction_mean": float(probs.mean()),
        "threshold": threshold,
    }


def roc_auc(y: np.ndarray, scores: np.ndarray) -> float | None:
    """Exact ROC AUC (Mann-Whitney U with average ranks for ties), None with one class."""
    pos = int(y.sum())
    neg = len(y) - pos
    if pos == 0 or neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    # Tied scores share the mean of the ranks they span.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    mean_rank = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(mean_rank, counts)
    return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg))


def average_precision(y: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the precision-recall curve as average precision (scikit-learn's definition)."""
    pos = int(y.sum())
    if pos == 0:
        return None
    order = np.argsort(-scores, kind="mergesort")
    ys, ss = y[order], scores[order]
    # Evaluate only at the last index of each run of tied scores.
    last = np.r_[np.flatnonzero(np.diff(ss)), len(ss) - 1]
    tps = np.cumsum(ys)[last]
    precision = tps / (last + 1)
    recall = tps / pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def best_f1_threshold(labels: np.ndarray, probs: np.ndarray, default: float) -> float:
    """The threshold maximising F1 on these rows; ``default`` when there are no positives.

    The threshold is the midpoint between the last score predicted positive and the next one, so
    it does not sit exactly on a training row's score.
    """
    y = labels.astype(bool)
    pos = int(y.sum())
    if pos == 0 or pos == len(y):
        return default
    order = np.argsort(-probs, kind="mergesort")
    ys, ss = y[order], probs[order]
    last = np.r_[np.flatnonzero(np.diff(ss)), len(ss) - 1]
    tps = np.cumsum(ys)[last]
    f1 = 2 * tps / (last + 1 + pos)
    best = int(np.argmax(f1))
    cut = last[best]
    if cut + 1 < len(ss):
        return float((ss[cut] + ss[cut + 1]) / 2)
    return float(ss[cut])

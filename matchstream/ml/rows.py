"""The text rows the transforms print: tab-separated, ``\\N`` for NULL, UTC DATETIME(6) stamps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

__all__ = ["METRICS_COLUMNS", "PREDICTION_COLUMNS", "format_metrics", "format_predictions",
           "timestamp"]

METRICS_COLUMNS = (
    "model_version", "rows", "positives", "accuracy", "accuracy_baseline", "auc",
    "auc_precision_recall", "average_loss", "precision", "recall", "f1", "label_mean",
    "prediction_mean", "threshold", "rows_seen_total", "trained_at", "train_seconds",
    "skipped_rows", "parent_version", "input_fingerprint", "psi_max", "psi_worst",
    "feature_drift", "error_drift", "error_drift_score",
)
PREDICTION_COLUMNS = ("id", "probability", "predicted", "model_version", "scored_at")

NULL = "\\N"


def timestamp(when: datetime | None = None) -> str:
    """``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC, what a MySQL ``DATETIME(6)`` column loads."""
    return (when or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _field(value: object) -> str:
    if value is None:
        return NULL
    if isinstance(value, float):
        return repr(value)
    return str(value)


def format_metrics(values: Mapping[str, object]) -> str:
    """One metrics line in :data:`METRICS_COLUMNS` order (KeyError if one is missing)."""
    return "\t".join(_field(values[name]) for name in METRICS_COLUMNS) + "\n"


def format_predictions(ids: Sequence[str], probs: Sequence[float], threshold: float,
                       version: int, scored_at: str) -> str:
    """All prediction lines of a batch; probabilities with 9 decimals (beyond float32 noise)."""
    tail = f"\t{version}\t{scored_at}\n"
    return "".join(f"{i}\t{p:.9f}\t{1 if p >= threshold else 0}{tail}"
                   for i, p in zip(ids, probs, strict=True))

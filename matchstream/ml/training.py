"""One training batch, prequentially: score it, learn from it, publish a version, report.

``train_batch`` is the body of ``transforms/train.py``. Decoding happens before the lock and
before TensorFlow is imported, so a bad batch fails in milliseconds and holds up no trainer.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from matchstream.ml.errors import ModelStoreError, SpecError
from matchstream.ml.features import Batch, decode_batch
from matchstream.ml.metrics import best_f1_threshold, evaluate
from matchstream.ml.numpy_scorer import NumpyScorer, model_dict
from matchstream.ml.rows import format_metrics, timestamp
from matchstream.ml.spec import FeatureSpec
from matchstream.ml.store import ModelStore

if TYPE_CHECKING:
    from matchstream.ml.linear import LinearModel, TrainingParams

__all__ = ["DEFAULT_THRESHOLD", "train_batch"]

# The threshold of an untrained model, whose probabilities are all 0.5: it predicts "match" for
# every row, which is what a model with no information and balanced class weights should do.
DEFAULT_THRESHOLD = 0.5


def train_batch(
    payloads: Sequence[bytes], store: ModelStore, spec: FeatureSpec, *, skip_bad: bool = False,
    params: TrainingParams | None = None,
) -> str | None:
    """Learn from one batch and return its metrics line (None when no row was usable)."""
    batch = decode_batch(payloads, spec, with_label=True, skip_bad=skip_bad)
    for bad in batch.skipped:
        print(f"skipped: {bad}", file=sys.stderr)
    if len(batch) == 0:
        return None
    linear = _import_linear()
    store.ensure()
    with store.lock():
        parent = store.latest_version()
        model, state = _load_parent(store, parent, spec, batch, linear, params)
        assert batch.labels is not None
        labels = batch.labels
        probs = model.predict_proba(batch.numeric, batch.categorical)
        metrics = evaluate(labels, probs, state["threshold"])  # (a) test, before learning

        seen = state["rows_seen_total"] + len(batch)
        positives = state["positives_seen_total"] + int(labels.sum())
        w_neg, w_pos = _class_weights(seen, positives)
        weight = np.where(labels == 1, w_pos, w_neg)
        started = time.perf_counter()
        version = max([parent or 0, *store.listed_versions()]) + 1
        model.learn(batch.numeric, batch.categorical, labels, weight, seed=version)  # (b) train
        train_seconds = time.perf_counter() - started
        new_probs = model.predict_proba(batch.numeric, batch.categorical)
        threshold = best_f1_threshold(labels, new_probs, state["threshold"])

        trained_at = timestamp()
        row = {**metrics, "model_version": version, "rows_seen_total": seen,
               "trained_at": trained_at, "train_seconds": round(train_seconds, 6),
               "skipped_rows": len(batch.skipped)}
        model_state = model.get_state()
        scorer_json = model_dict(model.spec, model_state["weights"].ravel(),
                                 float(model_state["bias"][0]), threshold, version)
        metadata = {
            "version": version,
            "parent_version": parent,
            "created_at": trained_at,
            "rows_seen_total": seen,
            "positives_seen_total": positives,
            "threshold": threshold,
            "batch_metrics": row,
            "training": {"params": _params_dict(model.params),
                         "class_weights": {"0": w_neg, "1": w_pos}},
            "spec": model.spec.to_dict(),
        }
        optimizer = io.BytesIO()
        np.savez(optimizer, **model_state)  # type: ignore[arg-type]
        store.publish(version, {  # (c) publish atomically
            "model.json": _json(scorer_json),
            "metadata.json": _json(metadata),
            "optimizer.npz": optimizer.getvalue(),
        })
    return format_metrics(row)  # (d) the caller writes it


def _load_parent(store: ModelStore, parent: int | None, spec: FeatureSpec, batch: Batch,
                 linear: Any, params: TrainingParams | None) -> tuple[LinearModel, dict[str, Any]]:
    params = params or linear.TrainingParams()
    if parent is None:
        if spec.needs_stats:
            means = np.nanmean(batch.numeric, axis=0) if len(batch) else []
            stds = np.nanstd(batch.numeric, axis=0) if len(batch) else []
            spec = spec.with_stats(np.nan_to_num(means).tolist(), np.nan_to_num(stds).tolist())
        return linear.LinearModel(spec, params), {
            "threshold": DEFAULT_THRESHOLD, "rows_seen_total": 0, "positives_seen_total": 0}
    try:
        scorer = NumpyScorer.from_dict(store.read_json(parent, "model.json"))
        metadata = store.read_json(parent, "metadata.json")
        with np.load(store.version_dir(parent) / "optimizer.npz") as npz:
            saved = {k: npz[k] for k in npz.files}
    except (OSError, KeyError, ValueError, SpecError) as exc:
        raise ModelStoreError(f"cannot load parent version: {exc}",
                              path=store.version_dir(parent)) from exc
    if _layout(scorer.spec) != _layout(spec):
        raise SpecError(f"differs from the spec of model version {parent} in {store.path} "
                        "(columns, features or vocabularies); train a new model directory",
                        path="--spec")
    model = linear.LinearModel(scorer.spec, params)
    model.set_state(saved)
    return model, {"threshold": scorer.threshold,
                   "rows_seen_total": int(metadata["rows_seen_total"]),
                   "positives_seen_total": int(metadata["positives_seen_total"])}


def _layout(spec: FeatureSpec) -> tuple[Any, ...]:
    """What must not change between versions: everything except the numeric constants."""
    return (spec.id, spec.label, spec.columns, tuple(f.name for f in spec.numeric),
            spec.categorical)


def _class_weights(seen: int, positives: int) -> tuple[float, float]:
    """``(negative, positive)`` weights balanced on the prevalence seen so far, so the 16%
    matches count as much as the 84% non-matches without depending on one batch's luck."""
    negatives = seen - positives
    if positives == 0 or negatives == 0:
        return 1.0, 1.0
    return seen / (2 * negatives), seen / (2 * positives)


def _params_dict(params: Any) -> dict[str, Any]:
    return {k: getattr(params, k) for k in ("learning_rate", "epochs", "minibatch", "l2", "seed")}


def _json(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=False) + "\n").encode("utf-8")


def _import_linear() -> Any:
    """Import the TensorFlow module with stderr muted: TensorFlow's CUDA probe prints a line
    before its logging settings apply, and that line would reach PIPELINES_ERRORS."""
    with _muted_stderr():
        from matchstream.ml import linear
    return linear


@contextlib.contextmanager
def _muted_stderr() -> Iterator[None]:
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        sys.stderr.flush()
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)



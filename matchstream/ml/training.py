"""One training batch, prequentially and exactly once: score it, learn it, publish, report.

:class:`Trainer` is what ``transforms/train.py`` runs, in its own process (cold: one batch, then
exit) or inside the warm trainer (:mod:`matchstream.ml.trainer`, many batches). Both call the
same :meth:`Trainer.train` on the same bytes, so their outputs are identical; warm only keeps the
TensorFlow model object (and its traced functions) between batches. A batch, in order:

1. Fingerprint the framed input (SHA-256 of stdin as it arrived) and decode it, before the lock
   and before TensorFlow is imported, so a bad batch fails in milliseconds and holds up no one.
2. Take the store lock; finish what a killed trainer left (:meth:`ModelStore.recover`).
3. If a retained version already learned this fingerprint, the batch is a retry (a failed LOAD,
   a killed engine, STOP, TEST PIPELINE on SingleStore...): print that version's metrics row
   byte for byte and change nothing. If a version learned exactly the first messages of this
   batch (a retry that an engine re-planned longer after a crash), print that version's row
   and go on with the rest of the messages only. Otherwise:
4. Score the batch with the head version (LATEST) and compute the metrics: the parent has not
   seen these rows, so they are honest held-out figures.
5. Continue training from the parent's weights and Adam state, with class weights balanced on
   the running totals; choose the threshold maximising F1 under the new weights. The parent
   must have been written by the estimator asked for (``--model``): a directory holds one.
6. Publish version ``N`` with its lineage (parent, fingerprint, metrics row) and print the row.

A dry run (``TEST PIPELINE`` on the local engine) does 1, 4 and 5 and prints the row it would
load, without touching the model directory.

The model itself is a :class:`~matchstream.ml.classifier.Classifier` built by
:mod:`matchstream.ml.estimators`; nothing here depends on which one.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from matchstream import faults
from matchstream.framing import fingerprint, split_frames
from matchstream.ml import estimators
from matchstream.ml.drift import DriftMonitor, DriftParams
from matchstream.ml.errors import ModelStoreError, SpecError
from matchstream.ml.features import Batch, decode_batch
from matchstream.ml.metrics import best_f1_threshold, evaluate
from matchstream.ml.model_json import parse_model
from matchstream.ml.rows import format_metrics, timestamp
from matchstream.ml.spec import FeatureSpec
from matchstream.ml.store import Lineage, ModelStore
from matchstream.ml.train_protocol import TrainReply, TrainRequest

if TYPE_CHECKING:
    from matchstream.ml.classifier import Classifier

__all__ = ["DEFAULT_THRESHOLD", "Trainer", "fingerprint"]

# The threshold of an untrained model, whose probabilities are all 0.5: it predicts "match" for
# every row, which is what a model with no information and balanced class weights should do.
DEFAULT_THRESHOLD = 0.5


@dataclass
class _Head:
    """The parent a batch learns from: its model and running totals."""

    version: int | None
    model: Classifier
    threshold: float
    rows_seen_total: int
    positives_seen_total: int
    drift: DriftMonitor  # continued from the parent's drift.json (afresh without one)


@dataclass
class Trainer:
    """Trains batches on model stores; keeps one TensorFlow model per (estimator, spec)
    between calls."""

    _models: dict[tuple[str, str], tuple[Classifier, dict[str, np.ndarray]]] = field(
        default_factory=dict)
    drift_params: DriftParams = field(default_factory=DriftParams)

    def train(self, request: TrainRequest, *, on_replay: Callable[[str], None] | None = None
              ) -> TrainReply:
        """Steps 1-6 of the module docstring; MatchstreamError subclasses for bad input."""
        spec = FeatureSpec.load(request.spec_path)
        digest = fingerprint(request.raw)  # 1.
        payloads, ends = split_frames(request.raw)
        batch = decode_batch(payloads, spec, with_label=True, skip_bad=request.skip_bad)
        log = tuple(f"skipped: {bad}" for bad in batch.skipped)
        if len(batch) == 0:
            return TrainReply("", log)
        store = ModelStore(request.model_dir, keep=request.keep)
        if request.dry_run:
            return self._dry_run(store, spec, batch, digest, log, request.estimator)
        store.ensure()
        with store.lock():
            store.recover()  # 2.
            learned = store.learned_lineages()
            same = next((x for x in learned if x.input_fingerprint == digest), None)  # 3.
            if same is not None:
                note = (f"batch already learned by version {same.version} (input "
                        f"{digest[:12]}): its metrics row again, the model unchanged")
                if on_replay is not None:
                    on_replay(f"replayed version {same.version} (input {digest[:12]})")
                return TrainReply(same.metrics_row or "", (*log, note), same.version,
                                  replayed=True)
            replayed, rest = "", batch
            prefix = _learned_prefix(learned, request.raw, ends)
            if prefix is not None:
                # A retry that reads further than the first try did (an engine that re-planned
                # the range after a crash): the first messages are that version's, the rest new.
                old, count = prefix
                replayed = old.metrics_row or ""
                if on_replay is not None:
                    on_replay(f"replayed version {old.version} for the first {count} messages "
                              f"(input {digest[:12]})")
                log = (*log, f"the first {count} messages were learned by version "
                       f"{old.version}: its metrics row again, then the rest")
                rest = decode_batch(payloads[count:], spec, with_label=True,
                                    skip_bad=request.skip_bad)
                if len(rest) == 0:
                    return TrainReply(replayed, log, old.version, replayed=True)
            version = store.next_version()
            head = self._head(store, store.latest_version(), spec, rest, request.estimator)
            files, row = self._learn(head, rest, version, digest, len(payloads),  # 4. and 5.
                                     replayed=replayed)
            faults.hit("trainer.after_learn")
            store.publish(version, files)  # 6.
        return TrainReply(replayed + row, log, version)

    def _dry_run(self, store: ModelStore, spec: FeatureSpec, batch: Batch, digest: str,
                 log: tuple[str, ...], estimator: str) -> TrainReply:
        """Steps 1, 4, 5 without the lock's file or a publish: the directory stays as it was."""
        exists = store.path.is_dir()
        learned = store.find_learned(digest) if exists else None
        if learned is not None and learned.metrics_row is not None:
            return TrainReply(learned.metrics_row, log, learned.version, replayed=True)
        parent = store.latest_version() if exists else None
        version = store.next_version() if exists else 1
        head = self._head(store, parent, spec, batch, estimator)
        _, row = self._learn(head, batch, version, digest, 0)
        return TrainReply(row, (*log, "dry run: nothing published"), version)

    # -- the maths -----------------------------------------------------------------------------

    def _learn(self, head: _Head, batch: Batch, version: int, digest: str, messages: int, *,
               replayed: str = "") -> tuple[dict[str, bytes], str]:
        """Score (prequential metrics), learn, choose the threshold; the files and the row."""
        model = head.model
        assert batch.labels is not None
        labels = batch.labels
        probs = model.predict_proba(batch.numeric, batch.categorical)
        metrics = evaluate(labels, probs, head.threshold)  # before learning: unseen rows
        monitor = head.drift
        drift = monitor.observe(batch.numeric, batch.categorical, log_losses(labels, probs))

        seen = head.rows_seen_total + len(batch)
        positives = head.positives_seen_total + int(labels.sum())
        w_neg, w_pos = _class_weights(seen, positives)
        weight = np.where(labels == 1, w_pos, w_neg)
        started = time.perf_counter()
        model.learn(batch.numeric, batch.categorical, labels, weight, seed=version)
        train_seconds = time.perf_counter() - started
        new_probs = model.predict_proba(batch.numeric, batch.categorical)
        threshold = best_f1_threshold(labels, new_probs, head.threshold)

        trained_at = timestamp()
        values = {**metrics, "model_version": version, "rows_seen_total": seen,
                  "trained_at": trained_at, "train_seconds": round(train_seconds, 6),
                  "skipped_rows": len(batch.skipped), "parent_version": head.version,
                  "input_fingerprint": digest, "psi_max": drift.psi_max,
                  "psi_worst": drift.worst(), "feature_drift": int(drift.feature_drift),
                  "error_drift": int(drift.error_drift),
                  "error_drift_score": round(drift.error_drift_score, 6)}
        row = format_metrics(values)
        state = model.get_state()
        scorer_json = model.model_dict(threshold, version)
        metadata = {
            "version": version,
            "parent_version": head.version,
            "created_at": trained_at,
            "rows_seen_total": seen,
            "positives_seen_total": positives,
            "threshold": threshold,
            "estimator": model.estimator,
            "batch_metrics": values,
            "training": {"params": asdict(model.params),
                         "class_weights": {"0": w_neg, "1": w_pos}},
            "spec": model.spec.to_dict(),
            "drift": {"psi": drift.psi, "error_drift_at_row": drift.error_drift_at,
                      "params": asdict(self.drift_params)},
        }
        optimizer = io.BytesIO()
        np.savez(optimizer, **state)  # type: ignore[arg-type]
        lineage = Lineage(version, head.version, "learned", digest, replayed + row, trained_at,
                          messages)
        return {
            "model.json": _json(scorer_json),
            "metadata.json": _json(metadata),
            "optimizer.npz": optimizer.getvalue(),
            "lineage.json": lineage.to_json(),
            # One line: with an indent json uses its pure-Python encoder, 8 ms a batch here.
            "drift.json": (json.dumps(monitor.to_dict(), separators=(",", ":")) + "\n").encode(),
        }, row

    def _head(self, store: ModelStore, parent: int | None, spec: FeatureSpec,
              batch: Batch, estimator: str) -> _Head:
        """The parent's model and totals: a fresh model (its initial weights) without one.
        Loaded from disk every time (a few milliseconds), so warm and cold start from the same
        bytes even after a rollback or a batch that another trainer learnt."""
        if parent is None:
            if spec.needs_stats:
                means = np.nanmean(batch.numeric, axis=0) if len(batch) else []
                stds = np.nanstd(batch.numeric, axis=0) if len(batch) else []
                spec = spec.with_stats(np.nan_to_num(means).tolist(),
                                       np.nan_to_num(stds).tolist())
            model, initial = self._model_for(estimator, spec)
            model.set_state(initial)
            return _Head(None, model, DEFAULT_THRESHOLD, 0, 0,
                         DriftMonitor(model.spec, self.drift_params))
        try:
            model_json = store.read_json(parent, "model.json")  # once: check, then parse
        except OSError as exc:
            raise ModelStoreError(f"cannot load parent version: {exc}",
                                  path=store.version_dir(parent)) from exc
        estimators.refuse_other(store, parent, estimator, model_json)
        try:
            parsed = parse_model(model_json)
            metadata = store.read_json(parent, "metadata.json")
            with np.load(store.version_dir(parent) / "optimizer.npz") as npz:
                saved = {k: npz[k] for k in npz.files}
        except (OSError, KeyError, ValueError, TypeError, SpecError) as exc:
            raise ModelStoreError(f"cannot load parent version: {exc}",
                                  path=store.version_dir(parent)) from exc
        if _layout(parsed.spec) != _layout(spec):
            raise SpecError(f"differs from the spec of model version {parent} in {store.path} "
                            "(columns, features or vocabularies); train a new model directory",
                            path="--spec")
        try:
            drift = DriftMonitor(parsed.spec, self.drift_params,
                                 _optional_json(store, parent, "drift.json"))
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise ModelStoreError(f"corrupt drift.json: {exc!r}",
                                  path=store.version_dir(parent) / "drift.json") from exc
        model, _ = self._model_for(estimator, parsed.spec)
        model.set_state(saved)
        return _Head(parent, model, parsed.threshold, int(metadata["rows_seen_total"]),
                     int(metadata["positives_seen_total"]), drift)

    def _model_for(self, estimator: str, spec: FeatureSpec
                   ) -> tuple[Classifier, dict[str, np.ndarray]]:
        """One model object per estimator and spec (constants included), with its initial
        state: building one costs a TensorFlow trace per batch, which was most of a warm
        batch's time."""
        key = (estimator, json.dumps(spec.to_dict(), sort_keys=True))
        if key not in self._models:
            model = estimators.build(estimator, spec)
            self._models[key] = (model, model.get_state())
        return self._models[key]


def _learned_prefix(learned: Sequence[Lineage], raw: bytes,
                    ends: Sequence[int]) -> tuple[Lineage, int] | None:
    """The version whose whole batch is the start of this one, and its message count."""
    digests: dict[int, str] = {}
    for lineage in learned:
        count = lineage.messages
        if count is None or not 0 < count < len(ends):
            continue
        if count not in digests:
            digests[count] = fingerprint(raw[:ends[count - 1]])
        if digests[count] == lineage.input_fingerprint:
            return lineage, count
    return None


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


def log_losses(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Each row's log loss, clipped like :func:`~matchstream.ml.metrics.evaluate`'s mean."""
    p = np.clip(probs, 1e-15, 1 - 1e-15)
    return np.asarray(-(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def _optional_json(store: ModelStore, version: int, name: str) -> dict[str, Any] | None:
    """A version's file that versions written before it existed lack."""
    try:
        return store.read_json(version, name)
    except FileNotFoundError:
        return None


def _json(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=False) + "\n").encode("utf-8")


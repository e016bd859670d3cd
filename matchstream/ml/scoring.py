"""One scoring batch: the newest model version, one prediction per row, in input order.

The body of ``transforms/score.py``. It must not import TensorFlow or pandas, and imports NumPy
only for batches above :func:`~matchstream.ml.pure_scorer.small_batch` rows (per model format;
2,000 for both today), so a small batch costs little more than starting Python. Both model
formats go through the same code: the scorers read either.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from matchstream.ml.errors import BadRow, ModelStoreError, SpecError
from matchstream.ml.pure_scorer import PureScorer, small_batch
from matchstream.ml.rows import format_predictions, timestamp
from matchstream.ml.store import ModelStore

__all__ = ["BLOCK_MESSAGES", "load_model", "load_scorer", "score_batch", "score_blocks"]

# Rows scored and written at a time: the engine starts loading the first block's predictions
# while the transform decodes the next. Large enough that NumPy's per-call costs vanish.
BLOCK_MESSAGES = 10_000


def load_model(store: ModelStore, *, wait_seconds: float = 0.0) -> tuple[int, dict[str, Any]]:
    """``(version, model.json)`` of the newest version; NoModelYet / ModelStoreError name it."""
    if wait_seconds > 0:
        return store.wait_live_model(wait_seconds)
    return store.read_live_model()


def load_scorer(store: ModelStore, *, wait_seconds: float = 0.0) -> Any:
    """The newest version as a :class:`~matchstream.ml.numpy_scorer.NumpyScorer`."""
    from matchstream.ml.numpy_scorer import NumpyScorer

    version, data = load_model(store, wait_seconds=wait_seconds)
    return _build(NumpyScorer, store, version, data)


def score_blocks(blocks: Iterable[tuple[int, list[bytes]]], store: ModelStore,
                 write: Callable[[str], None], *, wait_seconds: float = 0.0,
                 skip_bad: bool = False) -> None:
    """Score a batch block by block as its messages arrive and ``write`` each block's lines.

    One model version and one ``scored_at`` for the whole batch, read when the first message
    arrives, so the output is what scoring the batch in one piece would print.
    A bad row (without ``skip_bad``) raises with its index in the whole batch; what was written
    before it is discarded with the batch, which fails (the transform exits 1).
    """
    loaded: tuple[int, dict[str, Any]] | None = None
    scorers: dict[Any, Any] = {}
    scored_at = ""
    for first, payloads in blocks:
        if not payloads:
            continue
        if loaded is None:
            loaded = load_model(store, wait_seconds=wait_seconds)
            scored_at = timestamp()
        version, data = loaded
        try:
            if len(payloads) <= small_batch(data):
                scorer = scorers.get(PureScorer) or _build(PureScorer, store, version, data)
                scorers[PureScorer] = scorer
                ids, probs, skipped = scorer.score(payloads, skip_bad=skip_bad)
                _log_skipped([_shift(bad, first) for bad in skipped])
                write(format_predictions(ids, probs, scorer.threshold, scorer.version,
                                         scored_at))
                continue
            from matchstream.ml.features import decode_batch
            from matchstream.ml.numpy_scorer import NumpyScorer

            scorer = scorers.get(NumpyScorer) or _build(NumpyScorer, store, version, data)
            scorers[NumpyScorer] = scorer
            batch = decode_batch(payloads, scorer.spec, with_label=False, skip_bad=skip_bad)
        except BadRow as bad:
            raise _shift(bad, first) from None
        _log_skipped([_shift(bad, first) for bad in batch.skipped])
        if len(batch):
            probs_array = scorer.predict_proba(batch.numeric, batch.categorical)
            write(format_predictions(batch.ids, probs_array.tolist(), scorer.threshold,
                                     scorer.version, scored_at))


def _shift(bad: BadRow, first: int) -> BadRow:
    """The same bad row, numbered in the whole batch instead of in its block."""
    return bad if not first else BadRow(bad.reason, index=bad.index + first, column=bad.column)


def score_batch(payloads: Sequence[bytes], scorer: Any, *, skip_bad: bool = False) -> str:
    """Prediction lines for the batch with a NumpyScorer (the large-batch path)."""
    from matchstream.ml.features import decode_batch

    batch = decode_batch(payloads, scorer.spec, with_label=False, skip_bad=skip_bad)
    _log_skipped(batch.skipped)
    if len(batch) == 0:
        return ""
    probs = scorer.predict_proba(batch.numeric, batch.categorical)
    return format_predictions(batch.ids, probs.tolist(), scorer.threshold, scorer.version,
                              timestamp())


def _build(cls: Any, store: ModelStore, version: int, data: dict[str, Any]) -> Any:
    try:
        return cls.from_dict(data)
    except (KeyError, ValueError, TypeError, SpecError) as exc:
        raise ModelStoreError(f"corrupt model.json: {exc!r}",
                              path=store.version_dir(version) / "model.json") from exc


def _log_skipped(skipped: Sequence[Exception]) -> None:
    for bad in skipped:
        print(f"skipped: {bad}", file=sys.stderr)

"""NumPy (score.py) and TensorFlow compute the same probabilities on the whole score set, for
each estimator: the TensorFlow model restored from the version's saved state, the scorers from
its model.json (so the export is checked too, not only the arithmetic)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from matchstream.framing import encode_frames
from matchstream.ml import estimators
from matchstream.ml.features import decode_batch
from matchstream.ml.linear import LinearModel
from matchstream.ml.pure_scorer import PureScorer, small_batch
from matchstream.ml.scoring import load_scorer
from matchstream.ml.store import ModelStore

from .conftest import SCORE, run_transform


@pytest.mark.parametrize("estimator", ["linear", "dnn"])
def test_numpy_and_pure_python_match_tensorflow_on_score_set(
        estimator: str, request: pytest.FixtureRequest, score_lines: list[bytes]) -> None:
    store_dir: Path = request.getfixturevalue(
        "trained_dnn_store" if estimator == "dnn" else "trained_store")
    store = ModelStore(store_dir)
    scorer = load_scorer(store)
    assert scorer.estimator == estimator
    batch = decode_batch(score_lines, scorer.spec, with_label=False)
    tf_model = estimators.build(estimator, scorer.spec)
    with np.load(store.version_dir(scorer.version) / "optimizer.npz") as npz:
        tf_model.set_state({k: npz[k] for k in npz.files})
    tf_probs = tf_model.predict_proba(batch.numeric, batch.categorical)
    np_probs = scorer.predict_proba(batch.numeric, batch.categorical)
    assert len(np_probs) == len(score_lines) == 975
    assert np.abs(tf_probs - np_probs).max() < 1e-6
    # The plain-Python path score.py takes for small batches computes the same function.
    data = store.read_live_model()[1]
    pure = PureScorer.from_dict(data)
    ids, pure_probs, skipped = pure.score(score_lines)
    assert ids == batch.ids and not skipped
    assert np.abs(np.array(pure_probs) - tf_probs).max() < 1e-6
    # A model that learnt something, not two implementations agreeing on a constant.
    assert np_probs.std() > 0.05

    # And what score.py prints is that same function, in input order, on both of its paths:
    # up to the model's cut-over in plain Python, past it with NumPy.
    cut = small_batch(data)
    small = (score_lines * 3)[:cut]
    result = run_transform(SCORE, f"--model-dir {store_dir}", encode_frames(small))
    assert result.code == 0, result.stderr
    large = run_transform(SCORE, f"--model-dir {store_dir}", encode_frames(score_lines * 3))
    assert large.code == 0, large.stderr
    assert 3 * len(score_lines) > cut
    large_rows = [line.split("\t")[:3] for line in large.stdout.splitlines()]
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert large_rows[:cut] == [r[:3] for r in rows]
    tf_thrice = np.tile(tf_probs, 3)
    for printed_rows in (rows, [line.split("\t") for line in large.stdout.splitlines()]):
        printed = np.array([float(r[1]) for r in printed_rows])
        assert np.abs(printed - tf_thrice[:len(printed)]).max() < 1e-6
        assert {r[3] for r in printed_rows} == {str(scorer.version)}
    assert [r[0] for r in rows[:len(batch.ids)]] == batch.ids
    np_thrice = np.tile(np_probs, 3)
    assert [int(r[2]) for r in large_rows] == (np_thrice >= scorer.threshold).astype(int).tolist()


def test_linear_model_loads_weights_from_its_model_json(trained_store: Path,
                                                        score_lines: list[bytes]) -> None:
    """set_from_scorer (the TensorFlow scoring variant of scripts/bench_transforms.py)."""
    scorer = load_scorer(ModelStore(trained_store))
    batch = decode_batch(score_lines, scorer.spec, with_label=False)
    tf_model = LinearModel(scorer.spec)
    tf_model.set_from_scorer(scorer)
    assert np.abs(tf_model.predict_proba(batch.numeric, batch.categorical)
                  - scorer.predict_proba(batch.numeric, batch.categorical)).max() < 1e-6


def test_score_imports_neither_tensorflow_nor_pandas_nor_numpy() -> None:
    code = ("import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('score', {str(SCORE)!r})\n"
            "module = importlib.util.module_from_spec(spec)\n"
            "spec.loader.exec_module(module)\n"
            "heavy = ('tensorflow', 'keras', 'pandas', 'numpy')\n"
            "print(sorted(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

"""NumPy (score.py) and TensorFlow compute the same probabilities on the whole score set."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from matchstream.framing import encode_frames
from matchstream.ml.features import decode_batch
from matchstream.ml.linear import LinearModel
from matchstream.ml.pure_scorer import PureScorer
from matchstream.ml.scoring import load_scorer
from matchstream.ml.store import ModelStore

from .conftest import SCORE, run_transform


def test_numpy_matches_tensorflow_on_score_set(trained_store: Path,
                                               score_lines: list[bytes]) -> None:
    scorer = load_scorer(ModelStore(trained_store))
    batch = decode_batch(score_lines, scorer.spec, with_label=False)
    tf_model = LinearModel(scorer.spec)
    tf_model.set_from_scorer(scorer)
    tf_probs = tf_model.predict_proba(batch.numeric, batch.categorical)
    np_probs = scorer.predict_proba(batch.numeric, batch.categorical)
    assert len(np_probs) == len(score_lines) == 975
    assert np.abs(tf_probs - np_probs).max() < 1e-6
    # The plain-Python path score.py takes for small batches computes the same function.
    pure = PureScorer.from_dict(ModelStore(trained_store).read_live_model()[1])
    ids, pure_probs, skipped = pure.score(score_lines)
    assert ids == batch.ids and not skipped
    assert np.abs(np.array(pure_probs) - tf_probs).max() < 1e-6
    # A model that learnt something, not two implementations agreeing on a constant.
    assert np_probs.std() > 0.05

    # And what score.py prints is that same function, in input order, on both of its paths
    # (975 rows take the plain-Python path; repeated past 2,000 rows they take the NumPy one).
    result = run_transform(SCORE, f"--model-dir {trained_store}", encode_frames(score_lines))
    assert result.code == 0, result.stderr
    large = run_transform(SCORE, f"--model-dir {trained_store}", encode_frames(score_lines * 3))
    assert large.code == 0, large.stderr
    large_rows = [line.split("\t")[:3] for line in large.stdout.splitlines()]
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert large_rows == [r[:3] for r in rows] * 3
    assert [r[0] for r in rows] == batch.ids
    printed = np.array([float(r[1]) for r in rows])
    assert np.abs(printed - tf_probs).max() < 1e-6
    assert {r[3] for r in rows} == {str(scorer.version)}
    assert [int(r[2]) for r in rows] == (np_probs >= scorer.threshold).astype(int).tolist()


def test_score_imports_neither_tensorflow_nor_pandas_nor_numpy() -> None:
    code = ("import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('score', {str(SCORE)!r})\n"
            "module = importlib.util.module_from_spec(spec)\n"
            "spec.loader.exec_module(module)\n"
            "heavy = ('tensorflow', 'keras', 'pandas', 'numpy')\n"
            "print(sorted(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

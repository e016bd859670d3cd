#!/usr/bin/env python3
"""Quality check: streaming train.py vs scikit-learn's LogisticRegression trained offline.

1. Stream ``data/train.csv`` through ``transforms/train.py`` in batches of ``--batch`` rows,
   one process per batch as a pipeline runs it, into a fresh model directory.
2. Score ``data/score.csv`` with ``transforms/score.py`` and compute ROC AUC against
   ``data/score_labels.csv``.
3. Fit ``LogisticRegression()`` (defaults) on the same preprocessed features of all training
   rows at once and compute its AUC on the same rows.

``--model linear|dnn`` chooses train.py's estimator (the offline baseline stays the logistic
regression). Exits 1 if the streaming AUC is more than ``--tolerance`` below the offline one.
Usage: ``python scripts/compare_quality.py [--model linear] [--batch 500] [--tolerance 0.01]``
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from matchstream.framing import encode_frames  # noqa: E402
from matchstream.ml.estimators import DEFAULT_ESTIMATOR, ESTIMATORS  # noqa: E402
from matchstream.ml.features import decode_batch, design_matrix  # noqa: E402
from matchstream.ml.spec import FeatureSpec  # noqa: E402
from matchstream.ml.trainer_link import stop_trainer  # noqa: E402


def lines(name: str) -> list[bytes]:
    return (ROOT / "data" / name).read_bytes().splitlines()[1:]


def run(script: str, args: list[str], payloads: list[bytes]) -> str:
    proc = subprocess.run([sys.executable, str(ROOT / "transforms" / script), *args],
                          input=encode_frames(payloads), capture_output=True, check=False)
    if proc.returncode:
        raise SystemExit(f"{script} failed: {proc.stderr.decode()}")
    return proc.stdout.decode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="streaming vs offline ROC AUC", allow_abbrev=False)
    parser.add_argument("--model", choices=ESTIMATORS, default=DEFAULT_ESTIMATOR)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--tolerance", type=float, default=0.01)
    args = parser.parse_args(argv)
    spec_path = ROOT / "data" / "features.json"
    spec = FeatureSpec.load(spec_path)
    train, score = lines("train.csv"), lines("score.csv")
    labels = {row.split(b",")[0].decode(): int(row.split(b",")[1]) for row in lines(
        "score_labels.csv")}

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = str(Path(tmp) / "models")
        print("version  rows  prequential_auc  (metrics row of each batch, model before learning)")
        for start in range(0, len(train), args.batch):
            row = run("train.py", ["--model-dir", model_dir, "--spec", str(spec_path),
                                   "--model", args.model],
                      train[start:start + args.batch]).split("\t")
            print(f"{row[0]:>7}  {row[1]:>4}  {row[5]}")
        out = run("score.py", ["--model-dir", model_dir], score)
        stop_trainer(Path(model_dir))  # the directory goes with the block: so does its trainer
    stream_seconds = time.perf_counter() - started
    rows = [line.split("\t") for line in out.splitlines()]
    stream_auc = roc_auc_score([labels[r[0]] for r in rows], [float(r[1]) for r in rows])

    tb, sb = (decode_batch(train, spec, with_label=True),
              decode_batch(score, spec, with_label=False))
    offline = LogisticRegression(max_iter=5000).fit(
        design_matrix(spec, tb.numeric, tb.categorical), tb.labels)
    offline_auc = roc_auc_score([labels[i] for i in sb.ids], offline.predict_proba(
        design_matrix(spec, sb.numeric, sb.categorical))[:, 1])
    baseline = np.mean([labels[i] == 0 for i in sb.ids])

    print(f"\nheld-out rows (waves 16-21): {len(rows)}; always-'no match' accuracy {baseline:.3f}")
    print(f"streaming train.py --model {args.model} (batches of {args.batch}, {len(train)} rows): "
          f"ROC AUC {stream_auc:.4f}  ({stream_seconds:.1f} s)")
    print(f"scikit-learn LogisticRegression offline, same features:  ROC AUC {offline_auc:.4f}")
    gap = offline_auc - stream_auc
    print(f"difference (offline - streaming): {gap:+.4f}  tolerance {args.tolerance}")
    return 0 if gap <= args.tolerance else 1


if __name__ == "__main__":
    raise SystemExit(main())

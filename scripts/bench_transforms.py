#!/usr/bin/env python3
"""Benchmark the transforms: cold start and rows/s, next to a TensorFlow-importing scorer.

Measured in one run on this machine:
* cold start: process start to the first prediction row on stdout (1-row batch), median of
  ``--repeat`` runs, for ``score.py`` and for a variant that imports TensorFlow and scores with
  the TensorFlow model (what score.py would cost if it shared the training code);
* rows/s of each process, start to exit, at batch sizes 100, 1,000 and 100,000;
* steady scoring rows/s: ``score_batch`` in-process on a 100,000-row batch (decode, predict,
  format), i.e. without process start.

Usage: ``python scripts/bench_transforms.py [--repeat 5] [--sizes 100,1000,100000]``
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from matchstream.framing import encode_frames  # noqa: E402
from matchstream.ml.scoring import load_scorer, score_batch  # noqa: E402
from matchstream.ml.store import ModelStore  # noqa: E402

TF_VARIANT = '''
import sys
sys.path.insert(0, {root!r})
from matchstream.ml.transform import guard_stdout, run
from matchstream.ml.scoring import load_scorer
from matchstream.ml.features import decode_batch
from matchstream.ml.rows import format_predictions, timestamp
from matchstream.ml.store import ModelStore
from matchstream.ml.linear import LinearModel  # imports TensorFlow

def body(payloads):
    scorer = load_scorer(ModelStore(sys.argv[2]))
    model = LinearModel(scorer.spec)
    model.set_from_scorer(scorer)
    batch = decode_batch(payloads, scorer.spec, with_label=False)
    probs = model.predict_proba(batch.numeric, batch.categorical)
    return format_predictions(batch.ids, probs, scorer.threshold, scorer.version, timestamp())

out = guard_stdout()
sys.exit(run("score_tf.py", body, sys.stdin.buffer, out))
'''


def rows(name: str, count: int) -> list[bytes]:
    """``count`` rows of a data file, repeated with fresh ids when the file is shorter."""
    base = (ROOT / "data" / name).read_bytes().splitlines()[1:]
    out = []
    for i in range(count):
        line = base[i % len(base)]
        out.append(b"%d" % (i + 1) + line[line.index(b","):])
    return out


def first_row_seconds(cmd: list[str], stdin: bytes) -> float:
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(stdin)
    proc.stdin.close()
    proc.stdout.readline()
    elapsed = time.perf_counter() - started
    proc.wait()
    if proc.returncode:
        raise SystemExit(f"{cmd} exited {proc.returncode}")
    return elapsed


def process_seconds(cmd: list[str], stdin: bytes) -> float:
    started = time.perf_counter()
    proc = subprocess.run(cmd, input=stdin, capture_output=True, check=False)
    if proc.returncode:
        raise SystemExit(f"{cmd} exited {proc.returncode}: {proc.stderr.decode()[-500:]}")
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="transform benchmark", allow_abbrev=False)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sizes", default="100,1000,100000")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    py = sys.executable
    print(f"date {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {platform.platform()}; "
          f"{os.cpu_count()} CPUs; Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = str(Path(tmp) / "models")
        spec = str(ROOT / "data" / "features.json")
        # In-process training (TensorFlow imported per process); the warm trainer's figures
        # are scripts/bench_training.py's.
        train_cmd = [py, str(ROOT / "transforms" / "train.py"), "--model-dir", model_dir,
                     "--spec", spec, "--trainer", "cold"]
        process_seconds(train_cmd, encode_frames(rows("train.csv", 500)))
        variant = Path(tmp) / "score_tf.py"
        variant.write_text(TF_VARIANT.format(root=str(ROOT)))
        score_cmd = [py, str(ROOT / "transforms" / "score.py"), "--model-dir", model_dir]
        tf_cmd = [py, str(variant), "--model-dir", model_dir]

        one = encode_frames(rows("score.csv", 1))
        cold = statistics.median(first_row_seconds(score_cmd, one) for _ in range(args.repeat))
        cold_tf = statistics.median(first_row_seconds(tf_cmd, one) for _ in range(args.repeat))
        print(f"\ncold start to first row (median of {args.repeat}):")
        print(f"  score.py            {cold * 1000:8.1f} ms")
        print(f"  TensorFlow variant  {cold_tf * 1000:8.1f} ms   ratio {cold_tf / cold:.1f}x")

        print("\nwhole process, start to exit (rows/s):")
        print(f"  {'batch':>7}  {'score.py':>10}  {'TF variant':>10}  {'ratio':>6}  "
              f"{'train.py':>9}")
        for size in sizes:
            s = process_seconds(score_cmd, encode_frames(rows("score.csv", size)))
            t = process_seconds(tf_cmd, encode_frames(rows("score.csv", size)))
            tr = process_seconds(train_cmd, encode_frames(rows("train.csv", size)))
            print(f"  {size:>7}  {size / s:>10.0f}  {size / t:>10.0f}  {t / s:>5.1f}x  "
                  f"{size / tr:>9.0f}")

        scorer = load_scorer(ModelStore(model_dir))
        batch = rows("score.csv", 100_000)
        best = min(_timed(lambda: score_batch(batch, scorer)) for _ in range(args.repeat))
        print(f"\nsteady scoring in-process, batch 100000: {100_000 / best:.0f} rows/s "
              f"(best of {args.repeat}: {best * 1000:.0f} ms)")
    return 0


def _timed(fn: object) -> float:
    started = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - started


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""Where score.py's plain-Python path stops paying: both paths timed per estimator and size.

For each estimator (one version trained by ``train.py --model ...`` on 500 rows, in-process) and
each batch size, score.py is run as a process (start to exit, median of ``--repeat``) twice: once
with every batch forced through the plain-Python scorer, once through NumPy (the cut-over of
:func:`matchstream.ml.pure_scorer.small_batch` overridden in a wrapper). The ratio NumPy / plain
is measured in the same run; above 1 the plain path is faster. The cut-over in pure_scorer.py
should sit where the ratio crosses 1.

Usage: ``.venv/bin/python scripts/bench_cutover.py [--repeat 5] [--sizes 250,500,...]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from matchstream.framing import encode_frames  # noqa: E402
from matchstream.ml.estimators import ESTIMATORS  # noqa: E402
from matchstream.ml.store import ModelStore  # noqa: E402

# score.py with every model format's cut-over set to argv[1] rows.
WRAPPER = ("import runpy, sys; import matchstream.ml.pure_scorer as p; "
           "p._CUT_OVER.update(dict.fromkeys(p._CUT_OVER, int(sys.argv[1]))); "
           "script = sys.argv[3]; sys.argv = ['score.py', '--model-dir', sys.argv[2]]; "
           "runpy.run_path(script, run_name='__main__')")


def lines(name: str) -> list[bytes]:
    return (ROOT / "data" / name).read_bytes().splitlines()[1:]


def seconds(model_dir: Path, cut: int, stdin: bytes, repeat: int, rows: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", WRAPPER, str(cut), str(model_dir),
                               str(ROOT / "transforms" / "score.py")], input=stdin,
                              capture_output=True, check=True, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        times.append(time.perf_counter() - started)
        assert done.stdout.count(b"\n") == rows
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sizes", default="250,500,1000,1500,2000,3000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    score = lines("score.csv")
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'model':<7} {'rows':>6} {'plain ms':>9} {'numpy ms':>9} {'numpy/plain':>12}")
        for estimator in ESTIMATORS:
            model_dir = Path(tmp) / estimator
            subprocess.run([sys.executable, str(ROOT / "transforms" / "train.py"),
                            "--model-dir", str(model_dir), "--spec",
                            str(ROOT / "data" / "features.json"), "--model", estimator,
                            "--trainer", "cold"], input=encode_frames(lines("train.csv")[:500]),
                           capture_output=True, check=True)
            assert ModelStore(model_dir).latest_version() == 1
            for n in sizes:
                stdin = encode_frames([score[i % len(score)] for i in range(n)])
                plain = seconds(model_dir, 10**9, stdin, args.repeat, n)
                numpy = seconds(model_dir, 0, stdin, args.repeat, n)
                print(f"{estimator:<7} {n:>6} {plain * 1000:>9.1f} {numpy * 1000:>9.1f} "
                      f"{numpy / plain:>12.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

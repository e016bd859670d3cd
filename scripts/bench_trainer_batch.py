"""Benchmark: what one warm training batch costs the trainer, in-process (no engine, no socket).

``Trainer.train`` on consecutive batches of ``--batch`` rows of data/train.csv into a fresh model
directory, the first ``--warmup`` left out (TensorFlow's tracing); prints the median and mean
milliseconds per batch. Compare two trees back to back on the shared machine, e.g. the previous
main checked out in a worktree: ``PYTHONPATH=/tmp/prev-main .venv/bin/python
scripts/bench_trainer_batch.py`` then ``.venv/bin/python scripts/bench_trainer_batch.py``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from matchstream.config import project_root
from matchstream.framing import encode_frames
from matchstream.ml.train_protocol import TrainRequest
from matchstream.ml.training import Trainer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--batch", type=int, default=75, help="rows per batch (the demo's ~75)")
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    root = project_root()
    lines = (root / "data" / "train.csv").read_bytes().splitlines()[1:]
    spec = str(root / "data" / "features.json")
    trainer = Trainer()
    seconds = []
    with tempfile.TemporaryDirectory() as tmp:
        for start in range(0, len(lines) - args.batch + 1, args.batch):
            request = TrainRequest(encode_frames(lines[start:start + args.batch]),
                                   str(Path(tmp) / "models"), spec)
            began = time.perf_counter()
            trainer.train(request)
            seconds.append(time.perf_counter() - began)
    timed = seconds[args.warmup:]
    print(f"{root}: {len(timed)} batches of {args.batch} rows, median "
          f"{1000 * statistics.median(timed):.1f} ms, mean {1000 * statistics.mean(timed):.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

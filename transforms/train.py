#!/usr/bin/env python3
"""Training transform: learn each batch exactly once, publish a model version, print its row.

Usage (arguments as in CREATE PIPELINE ... WITH TRANSFORM, split on spaces)::

    train.py --model-dir DIR --spec PATH [--model linear|dnn] [--keep N]
             [--on-bad-row fail|skip] [--trainer warm|cold] [--trainer-idle SECONDS] [--dry-run]

stdin: framed CSV rows with the label (columns of the spec); stdout: one tab-separated metrics
row per batch (columns in docs/model.md); logs and errors on stderr. The batch is handed to the
directory's warm trainer (started on demand, holding TensorFlow) or, with ``--trainer cold`` or
when none can be had, trained in this process with identical results.
"""

from __future__ import annotations

import os
import sys
from typing import BinaryIO, TextIO

from matchstream.ml.estimators import ESTIMATORS
from matchstream.ml.train_protocol import TrainRequest
from matchstream.ml.trainer_link import train
from matchstream.ml.transform import guard_stdout, run_raw, train_parser


def main(stdin: BinaryIO, stdout: TextIO, argv: list[str]) -> int:
    parser = train_parser("train.py")
    args = parser.parse_args(argv)
    if args.keep < 2:
        parser.error("--keep must be at least 2")
    if args.model not in ESTIMATORS:  # from MATCHSTREAM_MODEL, which argparse does not check
        parser.error(f"--model must be one of {', '.join(ESTIMATORS)}, got {args.model!r}")

    def body(raw: bytes) -> tuple[str, tuple[str, ...]]:
        # Absolute: the warm trainer runs in another directory.
        reply = train(TrainRequest(raw, os.path.abspath(args.model_dir),
                                   os.path.abspath(args.spec), keep=args.keep,
                                   skip_bad=args.on_bad_row == "skip", dry_run=args.dry_run,
                                   estimator=args.model),
                      mode=args.trainer, idle_seconds=args.trainer_idle)
        return reply.text, reply.log

    return run_raw("train.py", body, stdin, stdout)


if __name__ == "__main__":
    out = guard_stdout()
    sys.exit(main(sys.stdin.buffer, out, sys.argv[1:]))

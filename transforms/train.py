#!/usr/bin/env python3
"""Training transform: learn from each batch, publish a model version, print one metrics row.

Usage (arguments as in CREATE PIPELINE ... WITH TRANSFORM, split on spaces)::

    train.py --model-dir DIR --spec PATH [--keep N] [--on-bad-row fail|skip]

stdin: framed CSV rows with the label (columns of the spec); stdout: one tab-separated metrics
row per batch (columns in docs/model.md); logs and errors on stderr.
"""

from __future__ import annotations

import sys
from typing import BinaryIO, TextIO

from matchstream.ml.spec import FeatureSpec
from matchstream.ml.store import ModelStore
from matchstream.ml.training import train_batch
from matchstream.ml.transform import base_parser, guard_stdout, keep_arg, run


def main(stdin: BinaryIO, stdout: TextIO, argv: list[str]) -> int:
    parser = base_parser("train.py", "Prequential training transform (test, then train).")
    parser.add_argument("--spec", required=True, help="feature spec JSON (data/features.json)")
    keep_arg(parser)
    args = parser.parse_args(argv)
    if args.keep < 2:
        parser.error("--keep must be at least 2")

    def body(payloads: list[bytes]) -> str | None:
        spec = FeatureSpec.load(args.spec)
        return train_batch(payloads, ModelStore(args.model_dir, keep=args.keep), spec,
                           skip_bad=args.on_bad_row == "skip")

    return run("train.py", body, stdin, stdout)


if __name__ == "__main__":
    out = guard_stdout()
    sys.exit(main(sys.stdin.buffer, out, sys.argv[1:]))

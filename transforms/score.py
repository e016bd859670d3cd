#!/usr/bin/env python3
"""Scoring transform: one prediction row per input row with the newest model version.

Usage (arguments as in CREATE PIPELINE ... WITH TRANSFORM, split on spaces)::

    score.py --model-dir DIR [--wait-for-model SECONDS] [--on-bad-row fail|skip]

stdin: framed CSV rows without the label (the spec saved in the model version says which
columns); stdout: ``id, probability, predicted, model_version, scored_at`` tab-separated,
written block by block (10,000 rows) as the batch arrives, so the engine loads while it scores.
Imports neither TensorFlow nor pandas, and NumPy only for batches above 2,000 rows, so a
small batch costs little more than starting Python.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import BinaryIO, TextIO

from matchstream.ml.scoring import BLOCK_MESSAGES, score_blocks
from matchstream.ml.store import ModelStore
from matchstream.ml.transform import base_parser, guard_stdout, run_blocks


def main(stdin: BinaryIO, stdout: TextIO, argv: list[str]) -> int:
    parser = base_parser("score.py", "Scoring transform (NumPy, newest model version).")
    parser.add_argument("--spec", help="accepted for symmetry with train.py and ignored: "
                        "scoring always uses the spec saved in the model version")
    parser.add_argument("--wait-for-model", type=float, default=0.0, metavar="SECONDS",
                        help="wait up to SECONDS for a first model version instead of failing")
    args = parser.parse_args(argv)

    def body(blocks: Iterable[tuple[int, list[bytes]]], write: Callable[[str], None]) -> None:
        score_blocks(blocks, ModelStore(args.model_dir), write,
                     wait_seconds=args.wait_for_model, skip_bad=args.on_bad_row == "skip")

    return run_blocks("score.py", body, stdin, stdout, BLOCK_MESSAGES)


if __name__ == "__main__":
    out = guard_stdout()
    sys.exit(main(sys.stdin.buffer, out, sys.argv[1:]))

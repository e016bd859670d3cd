#!/usr/bin/env python3
"""Outcomes transform: the true outcome of each scored date, as a row of ``outcomes``.

Usage (arguments as in CREATE PIPELINE ... WITH TRANSFORM, split on spaces)::

    outcomes.py --spec PATH [--on-bad-row fail|skip]

stdin: framed ``id,match`` rows (the spec's id and label columns); stdout: ``id, match``
tab-separated, in input order, the label as 0 or 1. A bad row fails the batch (exit 1, its
position on stderr) or, with ``--on-bad-row skip``, is left out and logged; the reject pipeline
(rejects.py ``--rows outcomes``) records it. Imports no NumPy: a batch is a few short lines.
"""

from __future__ import annotations

import sys
from typing import BinaryIO, TextIO

from matchstream.framing import split_frames
from matchstream.ml.outcome_rows import decode_outcomes
from matchstream.ml.spec import FeatureSpec
from matchstream.ml.transform import guard_stdout, new_parser, run_raw


def main(stdin: BinaryIO, stdout: TextIO, argv: list[str]) -> int:
    parser = new_parser("outcomes.py", "Outcomes transform: id,match rows for table outcomes.")
    parser.add_argument("--spec", required=True, help="feature spec JSON (data/features.json)")
    parser.add_argument("--on-bad-row", choices=("fail", "skip"), default="fail",
                        help="fail the batch (default) or leave bad rows out and log them")
    args = parser.parse_args(argv)

    def body(raw: bytes) -> tuple[str, tuple[str, ...]]:
        spec = FeatureSpec.load(args.spec)
        payloads, _ = split_frames(raw)
        batch = decode_outcomes(payloads, spec, skip_bad=args.on_bad_row == "skip")
        text = "".join(f"{row_id}\t{label}\n" for row_id, label in batch.rows)
        return text, tuple(f"skipped: {bad}" for bad in batch.skipped)

    return run_raw("outcomes.py", body, stdin, stdout)


if __name__ == "__main__":
    out = guard_stdout()
    sys.exit(main(sys.stdin.buffer, out, sys.argv[1:]))

#!/usr/bin/env python3
"""Rejects transform: one row per message the demo transforms leave out, nothing for the rest.

Usage (arguments as in CREATE PIPELINE ... WITH TRANSFORM, split on spaces)::

    rejects.py --spec PATH --rows training|scoring|outcomes

stdin: the framed batch of a training, scoring or outcomes topic; stdout: for each message the
decoder of train.py / score.py / outcomes.py refuses (``--rows training``: with the label;
``--rows outcomes``: ``id,match`` rows), ``batch_fingerprint, position,
reason, message_bytes, message_sha256, message`` tab-separated, the message's first 64 KiB
escaped for LOAD DATA (docs/model.md, "Bad rows"). Exits 0 whatever the rows hold; 1 only for
bad framing or an unreadable spec, 2 for wrong arguments. Imports no NumPy for a small batch.
"""

from __future__ import annotations

import sys
from typing import BinaryIO

from matchstream.errors import MatchstreamError
from matchstream.ml.rejects import ROW_KINDS, reject_rows
from matchstream.ml.spec import FeatureSpec
from matchstream.ml.transform import EXIT_BAD_INPUT, EXIT_OK, guard_stdout, new_parser


def main(stdin: BinaryIO, stdout: BinaryIO, argv: list[str]) -> int:
    parser = new_parser("rejects.py", "Record the messages train.py / score.py / outcomes.py "
                        "skip as bad rows.")
    parser.add_argument("--spec", required=True, help="feature spec JSON (data/features.json)")
    parser.add_argument("--rows", required=True, choices=ROW_KINDS,
                        help="training rows carry the label, scoring rows do not, outcome rows "
                        "are id,label")
    args = parser.parse_args(argv)
    try:
        spec = FeatureSpec.load(args.spec)
        rows = reject_rows(stdin.read(), spec, rows=args.rows)
    except MatchstreamError as exc:
        print(f"rejects.py: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if rows:
        stdout.write(rows)
        stdout.flush()
    return EXIT_OK


if __name__ == "__main__":
    out = guard_stdout()
    sys.exit(main(sys.stdin.buffer, out.buffer, sys.argv[1:]))

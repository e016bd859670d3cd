"""What both transforms share: arguments, reading the framed batch, errors to exit codes.

A transform's stdout is loaded as data, so ``guard_stdout`` points file descriptor 1 at stderr
while the transform runs and hands the real stdout only to the code that writes rows: a stray
print (ours or a library's, even from C) cannot end up in a table.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import BinaryIO, TextIO

from matchstream.errors import MatchstreamError
from matchstream.framing import iter_frames
from matchstream.ml.store import DEFAULT_KEEP

__all__ = ["EXIT_BAD_INPUT", "EXIT_OK", "base_parser", "guard_stdout", "run"]

EXIT_OK = 0
EXIT_BAD_INPUT = 1  # bad rows, bad framing, a missing or corrupt model directory or spec
EXIT_USAGE = 2  # argparse's own code for wrong arguments


def base_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--model-dir", required=True, help="the shared model store directory")
    parser.add_argument("--on-bad-row", choices=("fail", "skip"), default="fail",
                        help="fail the batch (default) or leave bad rows out and count them")
    return parser


def run(prog: str, body: Callable[[list[bytes]], str | None], stdin: BinaryIO,
        stdout: TextIO) -> int:
    """Read the whole batch, run ``body`` on it, write its text; errors go to stderr."""
    try:
        payloads = list(iter_frames(stdin))
        text = body(payloads)
    except MatchstreamError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if text:
        stdout.write(text)
        stdout.flush()
    return EXIT_OK


def guard_stdout() -> TextIO:
    """Move the process's stdout aside and return a stream on it; fd 1 then goes to stderr."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(saved, "w", encoding="utf-8", newline="\n")


def keep_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keep", type=int, default=DEFAULT_KEEP,
                        help=f"model versions to keep (default {DEFAULT_KEEP}, at least 2)")

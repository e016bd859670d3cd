"""What both transforms share: arguments, reading the framed batch, errors to exit codes.

A transform's stdout is loaded as data, so ``guard_stdout`` points file descriptor 1 at stderr
while the transform runs and hands the real stdout only to the code that writes rows: a stray
print (ours or a library's, even from C) cannot end up in a table.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import BinaryIO, TextIO

from matchstream.errors import MatchstreamError
from matchstream.framing import iter_frame_blocks
from matchstream.ml.estimators import DEFAULT_ESTIMATOR, ESTIMATORS
from matchstream.ml.store import DEFAULT_KEEP
from matchstream.ml.train_protocol import DEFAULT_IDLE_SECONDS

__all__ = ["EXIT_BAD_INPUT", "EXIT_OK", "base_parser", "guard_stdout", "new_parser", "run_blocks",
           "run_raw", "train_parser"]

EXIT_OK = 0
EXIT_BAD_INPUT = 1  # bad rows, bad framing, a missing or corrupt model directory or spec
EXIT_USAGE = 2  # argparse's own code for wrong arguments

ENV_TRAINER = "MATCHSTREAM_TRAINER"
ENV_TRAINER_IDLE = "MATCHSTREAM_TRAINER_IDLE_SECONDS"
ENV_DRY_RUN = "MATCHSTREAM_DRY_RUN"
ENV_MODEL = "MATCHSTREAM_MODEL"


def new_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """An argument parser that takes whole option names only."""
    # allow_abbrev=False: a pipeline's `--model x` must be an error, not `--model-dir x`.
    return argparse.ArgumentParser(prog=prog, description=description, allow_abbrev=False)


def base_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = new_parser(prog, description)
    parser.add_argument("--model-dir", required=True, help="the shared model store directory")
    parser.add_argument("--on-bad-row", choices=("fail", "skip"), default="fail",
                        help="fail the batch (default) or leave bad rows out and count them")
    return parser


def train_parser(prog: str, environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """train.py's arguments; each default comes from its ``MATCHSTREAM_*`` variable if set
    (an argument wins over the variable, the variable over the built-in default)."""
    env = os.environ if environ is None else environ
    parser = base_parser(prog, "Prequential training transform (test, then train), exactly "
                         "once per batch.")
    parser.add_argument("--spec", required=True, help="feature spec JSON (data/features.json)")
    keep_arg(parser)
    parser.add_argument(
        "--model", choices=ESTIMATORS, default=env.get(ENV_MODEL, DEFAULT_ESTIMATOR),
        help=f"the estimator: linear (a linear classifier, default) or dnn (a small MLP); a "
        f"model directory holds one, so it must match the directory's versions ({ENV_MODEL})")
    parser.add_argument(
        "--trainer", choices=("warm", "cold"), default=env.get(ENV_TRAINER, "warm"),
        help=f"warm: hand batches to the directory's long-lived trainer, started on demand "
        f"(default); cold: train in this process ({ENV_TRAINER})")
    parser.add_argument(
        "--trainer-idle", type=float, metavar="SECONDS",
        default=float(env.get(ENV_TRAINER_IDLE, DEFAULT_IDLE_SECONDS)),
        help=f"a warm trainer exits after this long without a batch (default "
        f"{DEFAULT_IDLE_SECONDS:g}; {ENV_TRAINER_IDLE})")
    parser.add_argument(
        "--dry-run", action="store_true", default=env.get(ENV_DRY_RUN) == "1",
        help=f"print the row this batch would load, change nothing ({ENV_DRY_RUN}=1: the local "
        "engine sets it for TEST PIPELINE)")
    return parser


def run_raw(prog: str, body: Callable[[bytes], tuple[str, tuple[str, ...]]], stdin: BinaryIO,
            stdout: TextIO) -> int:
    """Run ``body`` on stdin's bytes as they came (framed) and write its text; its lines go to
    stderr, and a MatchstreamError becomes one ``prog: error: ...`` line and exit status 1."""
    try:
        text, log = body(stdin.read())
    except MatchstreamError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for line in log:
        print(line, file=sys.stderr)
    if text:
        stdout.write(text)
        stdout.flush()
    return EXIT_OK


def run_blocks(prog: str, body: Callable[[Iterable[tuple[int, list[bytes]]],
                                          Callable[[str], None]], None],
               stdin: BinaryIO, stdout: TextIO, block_messages: int) -> int:
    """Like :func:`run_raw`, streaming: ``body`` gets the batch as blocks of messages as they
    arrive and a ``write`` that puts text on stdout at once."""
    def write(text: str) -> None:
        if text:
            stdout.write(text)
            stdout.flush()

    try:
        body(iter_frame_blocks(stdin, block_messages), write)
    except MatchstreamError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
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

"""Run train.py, score.py, outcomes.py and rejects.py the way SingleStore will, on a few real
rows, and check the output.

The image build runs this as the database user (see Dockerfile), so a transform that cannot find
its interpreter, its packages, its feature spec or a writable directory fails ``docker build``
instead of failing every pipeline batch later. The test suite runs it on the host too
(tests/docker/test_image_layout.py), so the check itself is known to pass with working transforms.

Standard library only: it must run on the image's bare interpreter and on any host python3.

Usage::

    python3 smoke_transforms.py --transforms DIR --features FILE --data DIR [--path PATH]
"""

from __future__ import annotations

import argparse
import fcntl
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# SingleStore frames every Kafka message with an 8-byte length (native unsigned long, which is
# little-endian on x86_64): the same framing the local engine uses.
HEADER = struct.Struct("<Q")

# Rows per batch: enough for train.py to fit and evaluate a model, small enough that the build
# step takes seconds (TensorFlow's import dominates).
ROWS = 200

# The columns score.py prints per row: id, probability, predicted, model_version, scored_at.
SCORE_COLUMNS = 5
# The columns outcomes.py prints per outcome row: id, match.
OUTCOME_COLUMNS = 2
# The columns rejects.py prints per bad message: batch_fingerprint, position, reason,
# message_bytes, message_sha256, message.
REJECT_COLUMNS = 6

# How long one transform may take; a TF import on an emulated CPU is slow but not minutes.
TIMEOUT_S = 300

# The warm trainer train.py starts exits after this long without a batch; the smoke waits for it
# so that the build step leaves no process behind.
TRAINER_IDLE_S = 2.0

# Metrics columns that hold the wall clock (trained_at, train_seconds): they differ between runs.
CLOCK_FIELDS = (15, 16)


def without_clock(row: str) -> list[str]:
    return [v for i, v in enumerate(row.split("\t")) if i not in CLOCK_FIELDS]


def wait_trainer_gone(model_dir: Path, timeout: float = 60.0) -> None:
    """The trainer holds ``.trainer.lock`` while it lives: wait until the lock is free."""
    deadline = time.monotonic() + timeout
    with open(model_dir / ".trainer.lock", "a+b") as lock:
        while True:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SystemExit("smoke: the warm trainer did not exit when idle") from None
                time.sleep(0.1)


def framed_rows(csv_path: Path, rows: int) -> tuple[bytes, int]:
    """The first ``rows`` data rows of ``csv_path`` (header dropped), framed as one batch."""
    lines = csv_path.read_text(encoding="utf-8").splitlines()[1 : rows + 1]
    payload = b"".join(HEADER.pack(len(b)) + b for b in (line.encode() for line in lines))
    return payload, len(lines)


def framed_outcomes(csv_path: Path, rows: int) -> tuple[bytes, int]:
    """``id,match`` outcome rows for the ids of the first ``rows`` data rows of ``csv_path``
    (the label alternating: the smoke checks the format, not the truth), framed as one batch."""
    lines = csv_path.read_text(encoding="utf-8").splitlines()[1 : rows + 1]
    outcomes = [f"{line.split(',', 1)[0]},{i % 2}".encode() for i, line in enumerate(lines)]
    return b"".join(HEADER.pack(len(b)) + b for b in outcomes), len(outcomes)


def run_transform(script: Path, args: list[str], stdin: bytes, env: dict[str, str]) -> list[str]:
    """Execute ``script`` itself (so its shebang picks the interpreter) and return its rows."""
    proc = subprocess.run(
        [str(script), *args], input=stdin, capture_output=True, env=env, timeout=TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(
            f"smoke: {script.name} exited {proc.returncode}\n"
            f"--- stderr ---\n{proc.stderr.decode(errors='replace')}"
        )
    return [line for line in proc.stdout.decode().splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--transforms", type=Path, required=True,
                        help="dir of train.py, score.py, outcomes.py, rejects.py")
    parser.add_argument("--features", type=Path, required=True, help="the feature spec JSON")
    parser.add_argument("--data", type=Path, required=True, help="dir of train.csv and score.csv")
    parser.add_argument(
        "--path", default=None,
        help="PATH for the transforms; default: an empty environment, as if the database "
        "passed none (then /usr/bin/env searches only /bin:/usr/bin)",
    )
    args = parser.parse_args(argv)
    env = {} if args.path is None else {"PATH": args.path}

    with tempfile.TemporaryDirectory(prefix="matchstream-smoke-") as tmp:
        model_dir = os.path.join(tmp, "models")
        common = ["--model-dir", model_dir]
        train_in, _ = framed_rows(args.data / "train.csv", ROWS)
        # The warm path, as SingleStore runs it: train.py starts the directory's trainer.
        warm = ["--spec", str(args.features), "--trainer-idle", f"{TRAINER_IDLE_S:g}"]
        metrics = run_transform(args.transforms / "train.py", [*common, *warm], train_in, env)
        if len(metrics) != 1:
            raise SystemExit(f"smoke: train.py printed {len(metrics)} rows, expected 1 metrics row")
        # A retried batch is recognised and its row printed again, byte for byte.
        again = run_transform(args.transforms / "train.py", [*common, *warm], train_in, env)
        if again != metrics:
            raise SystemExit("smoke: train.py learnt a retried batch again")
        # The in-process path gives the same row (the clock columns aside).
        cold = run_transform(args.transforms / "train.py",
                             ["--model-dir", os.path.join(tmp, "cold"), "--spec",
                              str(args.features), "--trainer", "cold"], train_in, env)
        if without_clock(cold[0]) != without_clock(metrics[0]):
            raise SystemExit(f"smoke: warm and cold rows differ:\n{metrics[0]}\n{cold[0]}")

        score_in, n_score = framed_rows(args.data / "score.csv", ROWS)
        predictions = run_transform(args.transforms / "score.py", common, score_in, env)
        if len(predictions) != n_score:
            raise SystemExit(
                f"smoke: score.py printed {len(predictions)} rows for {n_score} inputs"
            )
        bad = [p for p in predictions if len(p.split("\t")) != SCORE_COLUMNS]
        if bad:
            raise SystemExit(f"smoke: score.py row without {SCORE_COLUMNS} tab-separated fields: "
                             f"{bad[0]!r}")
        if not os.path.isdir(os.path.join(model_dir, "versions")):
            raise SystemExit("smoke: train.py wrote no model version")
        # rejects.py prints a row for the bad message only (here the last one).
        bad_in = score_in + HEADER.pack(3) + b"1,2"
        rejects = run_transform(args.transforms / "rejects.py",
                                ["--spec", str(args.features), "--rows", "scoring"], bad_in, env)
        if len(rejects) != 1 or len(rejects[0].split("\t")) != REJECT_COLUMNS:
            raise SystemExit(f"smoke: rejects.py printed {rejects!r}, expected one row of "
                             f"{REJECT_COLUMNS} fields for the one bad message")
        if rejects[0].split("\t")[1] != str(n_score):
            raise SystemExit(f"smoke: rejects.py placed the bad message at {rejects[0]!r}")
        # outcomes.py leaves the bad message out; rejects.py --rows outcomes records only it.
        outcomes_in, n_outcomes = framed_outcomes(args.data / "score.csv", ROWS)
        outcomes_in += HEADER.pack(5) + b"abc,1"
        outcomes = run_transform(args.transforms / "outcomes.py",
                                 ["--spec", str(args.features), "--on-bad-row", "skip"],
                                 outcomes_in, env)
        if len(outcomes) != n_outcomes or any(
                len(o.split("\t")) != OUTCOME_COLUMNS for o in outcomes):
            raise SystemExit(f"smoke: outcomes.py printed {len(outcomes)} rows for "
                             f"{n_outcomes} good outcomes, or a row without {OUTCOME_COLUMNS} "
                             "fields")
        rejects = run_transform(args.transforms / "rejects.py",
                                ["--spec", str(args.features), "--rows", "outcomes"],
                                outcomes_in, env)
        if len(rejects) != 1 or rejects[0].split("\t")[1] != str(n_outcomes):
            raise SystemExit(f"smoke: rejects.py --rows outcomes printed {rejects!r}, expected "
                             f"one row for message {n_outcomes}")
        wait_trainer_gone(Path(model_dir))

    print(f"smoke: ok (train.py: 1 metrics row; score.py: {n_score} predictions; outcomes.py: "
          f"{n_outcomes} outcomes; rejects.py: 1 reject per topic)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

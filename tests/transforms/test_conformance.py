"""The conformance suite: every transform passes every check (framing edge cases, empty input,
row counts, stdout purity, exit codes, bad rows)."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from matchstream.framing import encode_frames
from matchstream.ml.rows import METRICS_COLUMNS, PREDICTION_COLUMNS

from .conftest import REPO, SCORE, SPEC, TRAIN, Result, data_lines, run_transform


@dataclass(frozen=True)
class Subject:
    """One transform under test: its script, input rows, and the shape of its output."""

    script: Path
    lines: list[bytes]
    columns: tuple[str, ...]
    rows_for: Callable[[int], int]  # input rows -> output rows
    mode: str = ""  # arguments that choose how the transform works (train.py's trainer)

    def args(self, model_dir: Path, extra: str = "") -> str:
        base = f"--model-dir {model_dir} --spec {SPEC} {self.mode}"
        return f"{base.strip()} {extra}".strip()


TRAIN_LINES = data_lines("train.csv")[1000:1040]
SUBJECTS = {
    # train.py handing batches to its warm trainer (the default) and training in-process.
    "train-warm": Subject(TRAIN, TRAIN_LINES, METRICS_COLUMNS, lambda n: 1, "--trainer warm"),
    "train-cold": Subject(TRAIN, TRAIN_LINES, METRICS_COLUMNS, lambda n: 1, "--trainer cold"),
    "score": Subject(SCORE, data_lines("score.csv")[:40], PREDICTION_COLUMNS, lambda n: n),
}


def assert_pure(result: Result, subject: Subject, rows: int) -> None:
    lines = result.stdout.splitlines()
    assert len(lines) == rows, result.stderr
    assert result.stdout.endswith("\n")
    for line in lines:
        assert len(line.split("\t")) == len(subject.columns), line


def check_batch(subject: Subject, model_dir: Path) -> None:
    result = run_transform(subject.script, subject.args(model_dir), encode_frames(subject.lines))
    assert result.code == 0, result.stderr
    assert_pure(result, subject, subject.rows_for(len(subject.lines)))


def check_one_row(subject: Subject, model_dir: Path) -> None:
    result = run_transform(subject.script, subject.args(model_dir),
                           encode_frames(subject.lines[:1]))
    assert result.code == 0, result.stderr
    assert_pure(result, subject, 1)


def check_trailing_newlines(subject: Subject, model_dir: Path) -> None:
    payloads = [line + b"\n" for line in subject.lines[:3]] + [subject.lines[3] + b"\r\n"]
    result = run_transform(subject.script, subject.args(model_dir), encode_frames(payloads))
    assert result.code == 0, result.stderr
    assert_pure(result, subject, subject.rows_for(4))


def check_empty_input(subject: Subject, model_dir: Path) -> None:
    result = run_transform(subject.script, subject.args(model_dir), b"")
    assert (result.code, result.stdout) == (0, "")


def check_truncated_header(subject: Subject, model_dir: Path) -> None:
    stdin = encode_frames(subject.lines[:2]) + b"\x05\x00\x00"
    result = run_transform(subject.script, subject.args(model_dir), stdin)
    assert (result.code, result.stdout) == (1, "")
    assert "message 2" in result.stderr and "length header" in result.stderr


def check_truncated_payload(subject: Subject, model_dir: Path) -> None:
    stdin = encode_frames(subject.lines[:2]) + struct.pack("<Q", 100) + b"abc"
    result = run_transform(subject.script, subject.args(model_dir), stdin)
    assert (result.code, result.stdout) == (1, "")
    assert "message 2" in result.stderr and "payload" in result.stderr


def check_unframed_csv(subject: Subject, model_dir: Path) -> None:
    stdin = b"\n".join(subject.lines[:3])  # someone piping the CSV in by hand
    result = run_transform(subject.script, subject.args(model_dir), stdin)
    assert (result.code, result.stdout) == (1, "")
    assert "framing error" in result.stderr


def check_bad_rows(subject: Subject, model_dir: Path) -> None:
    for bad, reason in [(b"", "empty message"), (b"1,2,3", "expected 9"),
                        (b"\xff\xfe" + subject.lines[0][2:], "not valid UTF-8"),
                        (subject.lines[0].replace(b",", b",x", 1), "is not a number")]:
        payloads = [subject.lines[0], subject.lines[1], bad, subject.lines[2]]
        result = run_transform(subject.script, subject.args(model_dir), encode_frames(payloads))
        assert (result.code, result.stdout) == (1, ""), bad
        assert "message 2" in result.stderr
        assert reason.split(" ")[0] in result.stderr, result.stderr


def check_header_row(subject: Subject, model_dir: Path) -> None:
    header = (REPO / "data" / ("train.csv" if subject.script == TRAIN else "score.csv")
              ).read_bytes().splitlines()[0]
    result = run_transform(subject.script, subject.args(model_dir),
                           encode_frames([header, *subject.lines[:2]]))
    assert result.code == 1
    assert "message 0" in result.stderr and "header" in result.stderr


def check_skip_bad_rows(subject: Subject, model_dir: Path) -> None:
    payloads = [subject.lines[0], b"junk", *subject.lines[1:5], b""]
    result = run_transform(subject.script, subject.args(model_dir, "--on-bad-row skip"),
                           encode_frames(payloads))
    assert result.code == 0, result.stderr
    assert_pure(result, subject, subject.rows_for(5))
    assert "message 1" in result.stderr and "message 6" in result.stderr
    if subject.script == TRAIN:
        row = dict(zip(METRICS_COLUMNS, result.stdout.rstrip("\n").split("\t"), strict=True))
        assert (row["rows"], row["skipped_rows"]) == ("5", "2")


def check_missing_model_dir(subject: Subject, model_dir: Path) -> None:
    missing = model_dir.parent / "no" / "such" / "dir"
    result = run_transform(subject.script, subject.args(missing), encode_frames(subject.lines))
    assert (result.code, result.stdout) == (1, "")
    assert str(missing) in result.stderr


def check_corrupt_model_dir(subject: Subject, model_dir: Path) -> None:
    (model_dir / "LATEST").write_text("garbage\n")
    result = run_transform(subject.script, subject.args(model_dir), encode_frames(subject.lines))
    assert (result.code, result.stdout) == (1, "")
    assert str(model_dir / "LATEST") in result.stderr


def check_bad_arguments(subject: Subject, model_dir: Path) -> None:
    result = run_transform(subject.script, "--no-such-option", encode_frames(subject.lines))
    assert result.code == 2 and result.stdout == ""


def check_retry_is_idempotent(subject: Subject, model_dir: Path) -> None:
    """The same batch again (a retry) gives the same rows; train.py learns it once."""
    stdin = encode_frames(subject.lines)
    versions = sorted((model_dir / "versions").iterdir())
    first = run_transform(subject.script, subject.args(model_dir), stdin)
    again = run_transform(subject.script, subject.args(model_dir), stdin)
    assert first.code == again.code == 0, first.stderr + again.stderr
    if subject.script == TRAIN:
        assert again.stdout == first.stdout  # byte for byte
        assert len(sorted((model_dir / "versions").iterdir())) == len(versions) + 1
        assert "already learned" in again.stderr
    else:
        def masked(text: str) -> list[list[str]]:
            return [line.split("\t")[:-1] for line in text.splitlines()]  # all but scored_at
        assert masked(again.stdout) == masked(first.stdout)


def check_abbreviated_option(subject: Subject, model_dir: Path) -> None:
    """Only whole option names: `--model DIR` is an error, not `--model-dir DIR`."""
    args = subject.args(model_dir).replace("--model-dir", "--model")
    result = run_transform(subject.script, args, encode_frames(subject.lines))
    assert result.code == 2 and result.stdout == ""
    assert "--model-dir" in result.stderr


CHECKS = [check_batch, check_one_row, check_trailing_newlines, check_empty_input,
          check_truncated_header, check_truncated_payload, check_unframed_csv, check_bad_rows,
          check_header_row, check_skip_bad_rows, check_missing_model_dir,
          check_corrupt_model_dir, check_bad_arguments, check_abbreviated_option,
          check_retry_is_idempotent]


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", sorted(SUBJECTS))
def test_transform_contract(name: str, check: Callable[[Subject, Path], None],
                            store_copy: Path) -> None:
    check(SUBJECTS[name], store_copy)

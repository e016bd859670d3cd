"""The conformance suite: every transform passes every check (framing edge cases, empty input,
row counts, stdout purity, exit codes, bad rows).

rejects.py is held to the same checks with its own contract where the two differ: it prints a
row for each bad row (and exits 0) instead of failing the batch, and it has no model directory.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from matchstream.framing import encode_frames, fingerprint
from matchstream.ml.model_json import estimator_of
from matchstream.ml.rejects import REJECT_COLUMNS
from matchstream.ml.rows import METRICS_COLUMNS, PREDICTION_COLUMNS
from matchstream.ml.spec import FeatureSpec
from matchstream.ml.store import ModelStore

from .conftest import OUTCOMES, REJECTS, REPO, SCORE, SPEC, TRAIN, Result, data_lines, run_transform


@dataclass(frozen=True)
class Subject:
    """One transform under test: its script, input rows, and the shape of its output."""

    script: Path
    lines: list[bytes]
    columns: tuple[str, ...]
    rows_for: Callable[[int], int]  # input rows -> output rows
    mode: str = ""  # arguments that choose how the transform works (train.py's trainer)
    estimator: str = "linear"  # the model directory it runs on holds this estimator's versions

    @property
    def records_bad_rows(self) -> bool:
        """rejects.py: a bad row is a row of output, not a failed batch; no model directory."""
        return self.script == REJECTS

    @property
    def with_label(self) -> bool:
        return self.script == TRAIN or "--rows training" in self.mode

    @property
    def outcome_rows(self) -> bool:
        """Its rows are ``id,match`` outcomes (outcomes.py, rejects.py --rows outcomes)."""
        return self.script == OUTCOMES or "--rows outcomes" in self.mode

    @property
    def uses_model_dir(self) -> bool:
        return self.script in (TRAIN, SCORE)

    def args(self, model_dir: Path, extra: str = "") -> str:
        where = f"--model-dir {model_dir} " if self.uses_model_dir else ""
        base = f"{where}--spec {SPEC} {self.mode}"
        return f"{base.strip()} {extra}".strip()


TRAIN_LINES = data_lines("train.csv")[1000:1040]
SCORE_LINES = data_lines("score.csv")[:40]
OUTCOME_LINES = data_lines("score_labels.csv")[:40]
OUTCOME_COLUMNS = ("id", "match")
SUBJECTS = {
    # train.py handing batches to its warm trainer (the default) and training in-process.
    "train-warm": Subject(TRAIN, TRAIN_LINES, METRICS_COLUMNS, lambda n: 1, "--trainer warm"),
    "train-cold": Subject(TRAIN, TRAIN_LINES, METRICS_COLUMNS, lambda n: 1, "--trainer cold"),
    # The same two on a directory of MLP versions; score.py applying one.
    "train-dnn-warm": Subject(TRAIN, TRAIN_LINES, METRICS_COLUMNS, lambda n: 1,
                              "--model dnn --trainer warm", "dnn"),
    "train-dnn-cold": Subject(TRAIN, TRAIN_LINES, METRICS_COLUMNS, lambda n: 1,
                              "--model dnn --trainer cold", "dnn"),
    "score": Subject(SCORE, SCORE_LINES, PREDICTION_COLUMNS, lambda n: n),
    "score-dnn": Subject(SCORE, SCORE_LINES, PREDICTION_COLUMNS, lambda n: n, "", "dnn"),
    # Good rows only in these batches: no row out.
    "rejects-training": Subject(REJECTS, TRAIN_LINES, REJECT_COLUMNS, lambda n: 0,
                                "--rows training"),
    "rejects-scoring": Subject(REJECTS, SCORE_LINES, REJECT_COLUMNS, lambda n: 0,
                               "--rows scoring"),
    # The true outcomes, sent later: id,match in, id and match out; their bad rows.
    "outcomes": Subject(OUTCOMES, OUTCOME_LINES, OUTCOME_COLUMNS, lambda n: n),
    "rejects-outcomes": Subject(REJECTS, OUTCOME_LINES, REJECT_COLUMNS, lambda n: 0,
                                "--rows outcomes"),
}


def assert_pure(result: Result, subject: Subject, rows: int) -> None:
    lines = result.stdout.split("\n")[:-1]  # a rejected message may hold a \r or a \x1c
    assert len(lines) == rows, result.stderr
    assert result.stdout.endswith("\n") or rows == 0 == len(result.stdout)
    for line in lines:
        assert len(line.split("\t")) == len(subject.columns), line


_UNESCAPE = {b"\\": b"\\", b"t": b"\t", b"n": b"\n", b"r": b"\r", b"0": b"\0"}


def load_data_reads(field: str) -> bytes:
    """What LOAD DATA ... FIELDS ESCAPED BY '\\\\' reads from one field of rejects.py's output
    (every escape rejects.py writes; any other one fails the test)."""
    data, out, i = field.encode("utf-8", "surrogateescape"), bytearray(), 0
    while i < len(data):
        if data[i:i + 1] == b"\\":
            out += _UNESCAPE[data[i + 1:i + 2]]
            i += 2
        else:
            out += data[i:i + 1]
            i += 1
    return bytes(out)


def rejected(result: Result) -> list[dict[str, str]]:
    """rejects.py's rows by column, the reason unescaped (the message still escaped)."""
    assert result.code == 0, result.stderr
    rows = [dict(zip(REJECT_COLUMNS, line.split("\t"), strict=True))
            for line in result.stdout.split("\n")[:-1]]
    for row in rows:
        row["reason"] = load_data_reads(row["reason"]).decode("utf-8")
    return rows


def check_batch(subject: Subject, model_dir: Path) -> None:
    result = run_transform(subject.script, subject.args(model_dir), encode_frames(subject.lines))
    assert result.code == 0, result.stderr
    assert_pure(result, subject, subject.rows_for(len(subject.lines)))
    if subject.script == TRAIN:  # the new version is the subject's estimator's, and says so
        store = ModelStore(model_dir)
        head = store.latest_version()
        assert head == int(result.stdout.split("\t")[0]) == 3
        assert estimator_of(store.read_json(head, "model.json")) == subject.estimator
        assert store.read_json(head, "metadata.json")["estimator"] == subject.estimator


def check_one_row(subject: Subject, model_dir: Path) -> None:
    result = run_transform(subject.script, subject.args(model_dir),
                           encode_frames(subject.lines[:1]))
    assert result.code == 0, result.stderr
    assert_pure(result, subject, subject.rows_for(1))


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


def bad_row_cases(subject: Subject) -> list[tuple[bytes, str | None, str]]:
    """``(message, column at fault, whole reason)`` of a few bad rows of this subject's kind."""
    if subject.outcome_rows:
        columns: tuple[str, ...] = OUTCOME_COLUMNS
        table = "outcomes.id"
    else:
        columns = FeatureSpec.load(SPEC).input_columns(with_label=subject.with_label)
        table = "predictions.id"
    second = subject.lines[0].split(b",")[1].decode()
    listed = ", ".join(columns[:4]) + (", ..." if len(columns) > 4 else "")
    return [
        (b"", None, "empty message"),
        (b"1,2,3", None, f"expected {len(columns)} fields ({listed}), got 3"),
        (b"\xff\xfe" + subject.lines[0][2:], None, "not valid UTF-8 (byte 0: b'\\xff')"),
        (subject.lines[0].replace(b",", b",x", 1), columns[1], f"'x{second}' is not a number"),
        (b"abc" + subject.lines[0][subject.lines[0].index(b","):], "id",
         f"id must be an integer that fits BIGINT ({table}), got 'abc'"),
    ]


def check_bad_rows(subject: Subject, model_dir: Path) -> None:
    for bad, column, reason in bad_row_cases(subject):
        payloads = [subject.lines[0], subject.lines[1], bad, subject.lines[2]]
        stdin = encode_frames(payloads)
        result = run_transform(subject.script, subject.args(model_dir), stdin)
        if subject.records_bad_rows:
            (row,) = rejected(result)
            assert (row["batch_fingerprint"], row["position"]) == (fingerprint(stdin), "2")
            assert row["reason"] == (f"column {column!r}: {reason}" if column else reason)
            assert int(row["message_bytes"]) == len(bad)
            continue
        assert (result.code, result.stdout) == (1, ""), bad
        where = f", column {column!r}" if column else ""
        assert f"bad row in message 2{where}: {reason}" in result.stderr, result.stderr


def check_header_row(subject: Subject, model_dir: Path) -> None:
    source = ("score_labels.csv" if subject.outcome_rows
              else "train.csv" if subject.with_label else "score.csv")
    header = (REPO / "data" / source).read_bytes().splitlines()[0]
    result = run_transform(subject.script, subject.args(model_dir),
                           encode_frames([header, *subject.lines[:2]]))
    reason = "this is the CSV header; send data rows only"
    if subject.records_bad_rows:
        assert [(r["position"], r["reason"]) for r in rejected(result)] == [("0", reason)]
        return
    assert result.code == 1
    assert f"bad row in message 0: {reason}" in result.stderr


def check_skip_bad_rows(subject: Subject, model_dir: Path) -> None:
    payloads = [subject.lines[0], b"junk", *subject.lines[1:5], b""]
    if subject.records_bad_rows:  # exactly what the others skip: one row each
        result = run_transform(subject.script, subject.args(model_dir), encode_frames(payloads))
        assert [r["position"] for r in rejected(result)] == ["1", "6"]
        return
    result = run_transform(subject.script, subject.args(model_dir, "--on-bad-row skip"),
                           encode_frames(payloads))
    assert result.code == 0, result.stderr
    assert_pure(result, subject, subject.rows_for(5))
    assert "message 1" in result.stderr and "message 6" in result.stderr
    if subject.script == TRAIN:
        row = dict(zip(METRICS_COLUMNS, result.stdout.rstrip("\n").split("\t"), strict=True))
        assert (row["rows"], row["skipped_rows"]) == ("5", "2")


def check_missing_model_dir(subject: Subject, model_dir: Path) -> None:
    if not subject.uses_model_dir:  # no model directory; its one file is the spec
        missing = model_dir.parent / "no" / "such" / "spec.json"
        result = run_transform(subject.script, subject.args(model_dir).replace(str(SPEC),
                                                                                str(missing)),
                               encode_frames(subject.lines))
        assert (result.code, result.stdout) == (1, "")
        assert str(missing) in result.stderr
        return
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
    if subject.records_bad_rows or subject.outcome_rows:
        assert again.stdout == first.stdout  # byte for byte
    elif subject.script == TRAIN:
        assert again.stdout == first.stdout  # byte for byte
        assert len(sorted((model_dir / "versions").iterdir())) == len(versions) + 1
        assert "already learned" in again.stderr
    else:
        def masked(text: str) -> list[list[str]]:
            return [line.split("\t")[:-1] for line in text.splitlines()]  # all but scored_at
        assert masked(again.stdout) == masked(first.stdout)


def check_abbreviated_option(subject: Subject, model_dir: Path) -> None:
    """Only whole option names: `--model DIR` is an error, not `--model-dir DIR`."""
    option = ("--rows" if subject.records_bad_rows
              else "--model-dir" if subject.uses_model_dir else "--spec")
    args = subject.args(model_dir).replace(option, option[:-2])
    result = run_transform(subject.script, args, encode_frames(subject.lines))
    assert result.code == 2 and result.stdout == ""
    assert option in result.stderr


CHECKS = [check_batch, check_one_row, check_trailing_newlines, check_empty_input,
          check_truncated_header, check_truncated_payload, check_unframed_csv, check_bad_rows,
          check_header_row, check_skip_bad_rows, check_missing_model_dir,
          check_corrupt_model_dir, check_bad_arguments, check_abbreviated_option,
          check_retry_is_idempotent]


# rejects.py and outcomes.py read no model directory: a corrupt one is nothing to them (not a
# skipped case).
CASES = [(name, check) for name in sorted(SUBJECTS) for check in CHECKS
         if not (check is check_corrupt_model_dir and not SUBJECTS[name].uses_model_dir)]


@pytest.mark.parametrize(("name", "check"), CASES,
                         ids=[f"{name}-{check.__name__}" for name, check in CASES])
def test_transform_contract(name: str, check: Callable[[Subject, Path], None],
                            request: pytest.FixtureRequest) -> None:
    subject = SUBJECTS[name]
    fixture = "dnn_store_copy" if subject.estimator == "dnn" else "store_copy"
    check(subject, request.getfixturevalue(fixture))


def test_rejects_keeps_every_byte_of_a_bad_message_and_cuts_a_huge_one() -> None:
    """Escaped for LOAD DATA (backslash, tab, newline, CR, NUL), other bytes as they are; a
    message over 64 KiB keeps its first 64 KiB, its whole size and its whole digest."""
    import hashlib

    tricky = bytes(range(256)) + b"\\N\\\t\n"
    huge = b"1," + b"9" * 1_000_000
    stdin = encode_frames([SCORE_LINES[0], tricky, huge, SCORE_LINES[1]])
    result = run_transform(REJECTS, f"--spec {SPEC} --rows scoring", stdin)
    rows = rejected(result)
    assert [r["position"] for r in rows] == ["1", "2"]
    for row, message in zip(rows, (tricky, huge), strict=True):
        assert load_data_reads(row["message"]) == message[:65536]
        assert int(row["message_bytes"]) == len(message)
        assert row["message_sha256"] == hashlib.sha256(message).hexdigest()
    assert len(rows[1]["reason"]) <= 1024


def test_rejects_imports_no_numpy_for_a_small_batch() -> None:
    import subprocess
    import sys

    stdin = encode_frames([*SCORE_LINES[:5], b"junk"])
    proc = subprocess.run([sys.executable, "-X", "importtime", str(REJECTS), "--spec", str(SPEC),
                           "--rows", "scoring"], input=stdin, capture_output=True, timeout=60,
                          cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count(b"\n") == 1
    imported = {line.split("|")[-1].strip() for line in proc.stderr.decode().splitlines()
                if line.startswith("import time:")}
    assert not imported & {"numpy", "tensorflow", "pandas"}, sorted(imported)

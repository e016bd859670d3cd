"""The producer's file check on big and bad files (no broker needed: nothing is sent)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from matchstream.ml.spec import FeatureSpec
from matchstream.producer import CsvFileError, check_file

REPO = Path(__file__).resolve().parents[2]
SPEC = FeatureSpec.load(REPO / "data" / "features.json")
SCORE = (REPO / "data" / "score.csv").read_text().splitlines()


def _write_rows(path: Path, rows: int) -> Path:
    template = SCORE[1].split(",", 1)[1]
    with open(path, "w") as out:
        out.write(SCORE[0] + "\n")
        for i in range(rows):
            out.write(f"{i},{template}\n")
    return path


def _peak_check(path: Path) -> tuple[int, int]:
    tracemalloc.start()
    try:
        checked = check_file(path, spec=SPEC, role="scoring")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert checked.rejected == []
    return checked.rows, peak


def test_a_huge_file_is_checked_in_bounded_memory(tmp_path: Path) -> None:
    """Memory follows the chunk size, not the file: 7.5x the rows, about the same peak."""
    small_rows, small_peak = _peak_check(_write_rows(tmp_path / "small.csv", 20_000))
    huge = _write_rows(tmp_path / "huge.csv", 150_000)
    huge_rows, huge_peak = _peak_check(huge)
    assert (small_rows, huge_rows) == (20_000, 150_000)
    assert huge.stat().st_size > 30_000_000
    assert huge_peak < 1.5 * small_peak, (small_peak, huge_peak)


def test_rejected_rows_keep_their_file_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("\n".join([SCORE[0], SCORE[1], "7,x", SCORE[2], "", SCORE[3]]) + "\n")
    checked = check_file(path, spec=SPEC, role="scoring")
    assert checked.rows == 5
    assert [(r.line, r.reason.split(" (")[0]) for r in checked.rejected] == [
        (3, "expected 97 fields"),
        (5, "empty line"),
    ]


def test_a_label_column_in_a_scoring_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "labelled.csv"
    path.write_text("id,match," + SCORE[0].split(",", 1)[1] + "\n")
    with pytest.raises(CsvFileError) as caught:
        check_file(path, spec=SPEC, role="scoring")
    assert (caught.value.line, "'match' is the label" in caught.value.reason) == (1, True)


def test_an_id_that_predictions_id_would_refuse_is_rejected_before_sending(tmp_path: Path) -> None:
    """The producer checks with the transforms' decoder, so it refuses what BIGINT refuses."""
    rest = SCORE[1].split(",", 1)[1]
    ids = ["12", "abc", "-3", "1.5", "9223372036854775807", "9223372036854775808", ""]
    path = tmp_path / "ids.csv"
    path.write_text("\n".join([SCORE[0], *(f"{i},{rest}" for i in ids)]) + "\n")
    checked = check_file(path, spec=SPEC, role="scoring")
    assert checked.rows == len(ids)
    fits = "id must be an integer that fits BIGINT (predictions.id), got "
    assert [(r.line, r.reason) for r in checked.rejected] == [
        (3, fits + "'abc'"),
        (5, fits + "'1.5'"),
        (7, fits + "'9223372036854775808'"),
        (8, "id is empty"),
    ]


def test_an_outcomes_file_is_checked_as_id_and_label_rows(tmp_path: Path) -> None:
    path = tmp_path / "outcomes.csv"
    path.write_text("id,match\n11,1\nabc,0\n12,2\n13,\n14,0\n15,1,0\n")
    checked = check_file(path, spec=SPEC, role="outcomes")
    assert (checked.rows, checked.id_index) == (6, 0)
    assert [(r.line, r.reason) for r in checked.rejected] == [
        (3, "id must be an integer that fits BIGINT (outcomes.id), got 'abc'"),
        (4, "label must be 0 or 1, got '2'"),
        (5, "value is missing"),
        (7, "expected 2 fields (id, match), got 3"),
    ]


def test_a_scoring_file_is_not_an_outcomes_file(tmp_path: Path) -> None:
    path = tmp_path / "score.csv"
    path.write_text("\n".join(SCORE[:3]) + "\n")
    with pytest.raises(CsvFileError, match=r":1: wrong header for outcomes rows: .*unexpected"):
        check_file(path, spec=SPEC, role="outcomes")


def test_a_pipe_is_refused_instead_of_sending_nothing(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "rows.csv"
    os.mkfifo(fifo)
    with pytest.raises(CsvFileError, match="not a regular file") as info:
        check_file(fifo, spec=SPEC, role="scoring")
    assert str(fifo) in str(info.value)

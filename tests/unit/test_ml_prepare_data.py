"""scripts/prepare_data.py regenerates the committed files byte for byte and leaks nothing."""

from __future__ import annotations

import csv
import importlib.util
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FILES = ("train.csv", "score.csv", "score_labels.csv", "features.json")


def load_script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("prepare_data",
                                                  REPO / "scripts" / "prepare_data.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_regenerates_committed_files(tmp_path: Path) -> None:
    assert load_script().main(["--out", str(tmp_path)]) == 0
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (REPO / "data" / name).read_bytes(), name


def test_no_decision_or_after_event_columns_and_one_row_per_date() -> None:
    with open(REPO / "data" / "train.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    header = rows[0]
    leaks = [c for c in header if c in {"dec", "dec_o", "match_es", "you_call", "them_cal",
                                       "date_3", "satis_2", "length", "numdat_2"}
             or re.search(r"_(2|3|s)$", c)]
    assert leaks == []
    ids = [r[0] for r in rows[1:]]
    assert len(ids) == len(set(ids)) == 3209
    # Both orientations of a date would give ids a*1000+b and b*1000+a.
    pairs = {(int(i) // 1000, int(i) % 1000) for i in ids}
    assert not any((b, a) in pairs for a, b in pairs)
    score_header = (REPO / "data" / "score.csv").read_text().splitlines()[0].split(",")
    assert "match" not in score_header and score_header == [c for c in header if c != "match"]

"""The copied data set is byte-identical to the published one (see data/raw/README.md)."""

from __future__ import annotations

import hashlib
from pathlib import Path

RAW = Path(__file__).resolve().parents[2] / "data" / "raw"


def test_raw_csv_checksum() -> None:
    digest = hashlib.sha256((RAW / "Speed Dating Data.csv").read_bytes()).hexdigest()
    assert digest == "3b58f07aaf40c862fc886343c3bb493d4850e78a583926582c63341158692d37"

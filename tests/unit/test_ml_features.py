from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from matchstream.ml.errors import BadRow, SpecError
from matchstream.ml.features import _decode_slow, decode_batch
from matchstream.ml.spec import FeatureSpec

SPEC = FeatureSpec.from_dict({
    "id": "id", "label": "y", "columns": ["id", "y", "a", "b", "note", "c"],
    "numeric": {"a": {"mean": 1.0, "std": 2.0}, "b": {"mean": 0.0, "std": 1.0}},
    "categorical": {"c": {"vocabulary": ["red", "green"]}},
})


def test_fast_path_equals_reference_decoder() -> None:
    rng = np.random.default_rng(0)
    numbers = ["", "0", "7", "-3", "12.5", "-0.25", ".5", "1.", "123456789.012345", "0.0001"]
    lines = []
    for i in range(2000):
        a, b = rng.choice(numbers, 2)
        c = rng.choice(["", "red", "green"])
        lines.append(f"id{i},{i % 2},{a},{b},free text,{c}".encode())
    fast = decode_batch(lines, SPEC, with_label=True)
    slow = _decode_slow(lines, SPEC, SPEC.input_columns(with_label=True), True, False)
    assert fast.ids == slow.ids
    assert np.array_equal(fast.numeric, slow.numeric, equal_nan=True)  # bit for bit
    assert np.array_equal(fast.categorical, slow.categorical)
    assert fast.labels is not None and slow.labels is not None
    assert np.array_equal(fast.labels, slow.labels)


@pytest.mark.parametrize("line, column, reason", [
    (b"x,1,abc,2,n,red", "a", "'abc' is not a number"),
    (b"x,1,1e400,2,n,red", "a", "not a finite number"),
    (b"x,2,1,2,n,red", "y", "label must be 0 or 1"),
    (b"x,,1,2,n,red", "y", "value is missing"),
    (b"x,1,1,2,n,blue", "c", "unknown category 'blue'"),
    (b",1,1,2,n,red", "id", "id is empty"),
    (b"x,1,1,2,n", None, "expected 6 fields"),
    (b"", None, "empty message"),
    (b"x,1,\xe9,2,n,red", None, "not valid UTF-8"),
    (b"id,y,a,b,note,c", None, "CSV header"),
    (b"x,1,1\n2,2,n,red", None, "line break"),
])
def test_bad_row_names_position_column_and_reason(line: bytes, column: str | None,
                                                  reason: str) -> None:
    good = b"ok,0,1,2,n,red"
    with pytest.raises(BadRow) as info:
        decode_batch([good, good, line], SPEC, with_label=True)
    assert (info.value.index, info.value.column) == (2, column)
    assert reason in info.value.reason


def test_skip_policy_keeps_good_rows_in_order() -> None:
    lines = [b"a,0,1,2,n,red", b"bad", b"b,1,,3,n,", b'"c",1,"4",5,"x, y",green']
    batch = decode_batch(lines, SPEC, with_label=True, skip_bad=True)
    assert batch.ids == ["a", "b", "c"]
    assert batch.positions.tolist() == [0, 2, 3]
    assert [bad.index for bad in batch.skipped] == [1]
    assert np.isnan(batch.numeric[1, 0]) and batch.categorical[:, 0].tolist() == [0, -1, 1]


def test_scoring_rows_have_no_label() -> None:
    batch = decode_batch([b"a,1,2,n,green"], SPEC, with_label=False)
    assert batch.labels is None and batch.numeric.tolist() == [[1.0, 2.0]]
    with pytest.raises(BadRow, match="expected 5 fields"):
        decode_batch([b"a,0,1,2,n,green"], SPEC, with_label=False)


@pytest.mark.parametrize("change, reason", [
    ({"columns": ["id", "y"]}, "is not in 'columns'"),
    ({"numeric": {"a": {"mean": 0, "std": 0}}}, "std must be > 0"),
    ({"categorical": {"c": {"vocabulary": []}}}, "empty or repeats"),
    ({"format": "other/1"}, "format"),
])
def test_spec_errors_name_the_file(tmp_path: Path, change: dict, reason: str) -> None:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({**SPEC.to_dict(), **change}))
    with pytest.raises(SpecError) as info:
        FeatureSpec.load(path)
    assert info.value.path == str(path) and reason in info.value.reason


def test_spec_round_trips_and_shipped_spec_loads() -> None:
    assert FeatureSpec.from_dict(SPEC.to_dict()) == SPEC
    shipped = FeatureSpec.load(Path(__file__).resolve().parents[2] / "data" / "features.json")
    assert not shipped.needs_stats and shipped.id == "id" and shipped.label == "match"

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from matchstream.ml.errors import BadRow, SpecError
from matchstream.ml.features import _decode_fast, _decode_slow, decode_batch
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
        lines.append(f"{i},{i % 2},{a},{b},free text,{c}".encode())
    fast = decode_batch(lines, SPEC, with_label=True)
    slow = _decode_slow(lines, SPEC, SPEC.input_columns(with_label=True), True, False)
    assert fast.ids == slow.ids
    assert np.array_equal(fast.numeric, slow.numeric, equal_nan=True)  # bit for bit
    assert np.array_equal(fast.categorical, slow.categorical)
    assert fast.labels is not None and slow.labels is not None
    assert np.array_equal(fast.labels, slow.labels)


@pytest.mark.parametrize("line, column, reason", [
    (b"9,1,abc,2,n,red", "a", "'abc' is not a number"),
    (b"9,1,1e400,2,n,red", "a", "not a finite number"),
    (b"9,2,1,2,n,red", "y", "label must be 0 or 1"),
    (b"9,,1,2,n,red", "y", "value is missing"),
    (b"9,1,1,2,n,blue", "c", "unknown category 'blue'"),
    (b",1,1,2,n,red", "id", "id is empty"),
    (b"x,1,1,2,n,red", "id", "id must be an integer that fits BIGINT (predictions.id), got 'x'"),
    (b"9,1,1,2,n", None, "expected 6 fields"),
    (b"", None, "empty message"),
    (b"9,1,\xe9,2,n,red", None, "not valid UTF-8"),
    (b"id,y,a,b,note,c", None, "CSV header"),
    (b"9,1,1\n2,2,n,red", None, "line break"),
])
def test_bad_row_names_position_column_and_reason(line: bytes, column: str | None,
                                                  reason: str) -> None:
    good = b"1,0,1,2,n,red"
    with pytest.raises(BadRow) as info:
        decode_batch([good, good, line], SPEC, with_label=True)
    assert (info.value.index, info.value.column) == (2, column)
    assert reason in info.value.reason


def test_skip_policy_keeps_good_rows_in_order() -> None:
    lines = [b"1,0,1,2,n,red", b"bad", b"2,1,,3,n,", b'"3",1,"4",5,"x, y",green']
    batch = decode_batch(lines, SPEC, with_label=True, skip_bad=True)
    assert batch.ids == ["1", "2", "3"]
    assert batch.positions.tolist() == [0, 2, 3]
    assert [bad.index for bad in batch.skipped] == [1]
    assert np.isnan(batch.numeric[1, 0]) and batch.categorical[:, 0].tolist() == [0, -1, 1]


def test_scoring_rows_have_no_label() -> None:
    batch = decode_batch([b"1,1,2,n,green"], SPEC, with_label=False)
    assert batch.labels is None and batch.numeric.tolist() == [[1.0, 2.0]]
    with pytest.raises(BadRow, match="expected 5 fields"):
        decode_batch([b"1,0,1,2,n,green"], SPEC, with_label=False)


# Ids predictions.id BIGINT loads, and ids it refuses: both decoder paths must agree on each.
GOOD_IDS = ["0", "7", "-7", "007", "-0", "123456789012345678", "9223372036854775807",
            "-9223372036854775808", "0000000000000000000000042"]
BAD_IDS = ["abc", "1.5", "1e3", "+5", " 5", "5 ", "1_000", "--5", "-", "0x1f", "\u0663",
           "9223372036854775808", "-9223372036854775809", "99999999999999999999", "1" * 5000]


@pytest.mark.parametrize("row_id", GOOD_IDS)
def test_an_integer_id_that_fits_bigint_is_taken_by_both_paths(row_id: str) -> None:
    lines = [b"1,0,1,2,n,red", f"{row_id},1,3,4,n,green".encode()]
    columns = SPEC.input_columns(with_label=True)
    fast = _decode_fast(lines, b"\n".join(lines), SPEC, columns, True)
    slow = _decode_slow(lines, SPEC, columns, True, False)
    assert fast is not None and fast.ids == slow.ids == ["1", row_id]


@pytest.mark.parametrize("row_id", BAD_IDS)
def test_an_id_bigint_refuses_is_a_bad_row_on_both_paths(row_id: str) -> None:
    lines = [b"1,0,1,2,n,red", f"{row_id},1,3,4,n,green".encode()]
    columns = SPEC.input_columns(with_label=True)
    assert _decode_fast(lines, b"\n".join(lines), SPEC, columns, True) is None
    with pytest.raises(BadRow) as info:
        decode_batch(lines, SPEC, with_label=True)
    assert (info.value.index, info.value.column) == (1, "id")
    assert info.value.reason.startswith(
        "id must be an integer that fits BIGINT (predictions.id), got ")
    assert len(info.value.reason) < 200  # a long id is cut in the reason
    skipped = decode_batch(lines, SPEC, with_label=True, skip_bad=True)
    assert skipped.ids == ["1"] and [bad.index for bad in skipped.skipped] == [1]


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

"""matchstream.ml.rejects without a database: escaping, the row it prints, and that it rejects
exactly what the demo transforms skip (the round trip through a real LOAD DATA is in
tests/integration/test_bad_rows.py)."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from matchstream.framing import encode_frames, fingerprint
from matchstream.ml.errors import BadRow
from matchstream.ml.features import decode_batch
from matchstream.ml.rejects import (
    MESSAGE_PREFIX_BYTES,
    REASON_CHARS,
    REJECT_COLUMNS,
    SMALL_BATCH,
    escape_field,
    find_rejects,
    format_reject,
    reject_rows,
)
from matchstream.ml.spec import FeatureSpec

REPO = Path(__file__).resolve().parents[2]
SPEC = FeatureSpec.load(REPO / "data" / "features.json")
TRAIN = (REPO / "data" / "train.csv").read_bytes().splitlines()[1:]

# LOAD DATA's reading of FIELDS ESCAPED BY '\\' (MariaDB and SingleStore): "\x" is the byte the
# escape stands for, or x itself for any other x.
_READS = {b"0": b"\0", b"b": b"\b", b"n": b"\n", b"r": b"\r", b"t": b"\t", b"Z": b"\x1a"}


def load_data_field(field: bytes) -> bytes:
    out, i = bytearray(), 0
    while i < len(field):
        if field[i:i + 1] == b"\\" and i + 1 < len(field):
            nxt = field[i + 1:i + 2]
            out += _READS.get(nxt, nxt)
            i += 2
        else:
            out += field[i:i + 1]
            i += 1
    return bytes(out)


def test_pure_python_field_reader_knows_the_escapes() -> None:
    assert load_data_field(b"a\\tb\\\\c\\0\\Z\\q") == b"a\tb\\c\0\x1aq"


@pytest.mark.parametrize("data", [
    b"",
    bytes(range(256)),
    b"\\",
    b"ends with a backslash\\",
    b"\\N",  # LOAD DATA's NULL, when not escaped
    b"\\t\\n is text, not a tab",
    b"\t\n\r\0\x1a",
    "caf\u00e9 \u2603".encode(),
    b"\xff\xfe\x80 not UTF-8",
])
def test_escaped_field_reads_back_byte_for_byte(data: bytes) -> None:
    field = escape_field(data)
    assert not set(field) & {ord("\t"), ord("\n"), 0}
    assert load_data_field(field) == data
    assert field != b"\\N"


def test_escaping_random_bytes_round_trips() -> None:
    rng = random.Random(7)
    for _ in range(300):
        data = bytes(rng.choice(b"\\\t\n\r\0aZ\xff") for _ in range(rng.randrange(0, 40)))
        assert load_data_field(escape_field(data)) == data


def test_a_reject_row_has_the_columns_in_order() -> None:
    message = b"x\\y\tz\n"
    line = format_reject("f" * 64, BadRow("value is missing", index=3, column="attr"), message)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    fields = line[:-1].split(b"\t")
    assert len(fields) == len(REJECT_COLUMNS) == 6
    assert fields[:5] == [b"f" * 64, b"3", b"column 'attr': value is missing", b"6",
                          hashlib.sha256(message).hexdigest().encode()]
    assert load_data_field(fields[5]) == message


def test_a_huge_message_keeps_its_first_64_kib_and_its_whole_size_and_digest() -> None:
    message = bytes(random.Random(1).randrange(256) for _ in range(200_000))
    fields = format_reject("0" * 64, BadRow("empty message", index=0), message)[:-1].split(b"\t")
    assert (int(fields[3]), fields[4].decode()) == (len(message),
                                                    hashlib.sha256(message).hexdigest())
    assert load_data_field(fields[5]) == message[:MESSAGE_PREFIX_BYTES]


def test_a_long_reason_is_cut_to_the_column_width() -> None:
    reason = "unknown category " + "\u00e9" * 5000
    fields = format_reject("0" * 64, BadRow(reason, index=0, column="c"), b"m")[:-1].split(b"\t")
    text = load_data_field(fields[2]).decode("utf-8")
    assert len(text) == REASON_CHARS and text.endswith("...")


def _mixed_batch(n: int) -> list[bytes]:
    """Good training rows with every kind of bad row spread among them."""
    rng = random.Random(n)
    bad = [b"", b"1,2,3", b"\xff" + TRAIN[0][1:], TRAIN[0].replace(b",", b",x", 1),
           b"abc" + TRAIN[0][TRAIN[0].index(b","):], TRAIN[0].split(b",", 1)[0] + b",2,"
           + TRAIN[0].split(b",", 2)[2], TRAIN[0] + b"\r\n", TRAIN[0] + b"\n"]
    lines = [TRAIN[i % len(TRAIN)] for i in range(n)]
    for i in rng.sample(range(n), 40):
        lines[i] = rng.choice(bad)
    return lines


@pytest.mark.parametrize("n", [300, SMALL_BATCH + 500])
def test_rejects_exactly_what_training_skips_on_both_paths(n: int) -> None:
    lines = _mixed_batch(n)
    skipped = decode_batch(lines, SPEC, with_label=True, skip_bad=True).skipped
    found = list(find_rejects(lines, SPEC, rows="training"))
    assert [(b.index, b.column, b.reason) for b in found] == [
        (b.index, b.column, b.reason) for b in skipped]
    assert len(found) > 20


def test_reject_rows_fingerprint_is_train_py_input_fingerprint() -> None:
    raw = encode_frames([TRAIN[0], b"junk", TRAIN[1]])
    (line,) = reject_rows(raw, SPEC, rows="training").splitlines()
    assert line.split(b"\t")[0].decode() == fingerprint(raw) == hashlib.sha256(raw).hexdigest()
    assert reject_rows(encode_frames(TRAIN[:5]), SPEC, rows="training") == b""
    assert reject_rows(b"", SPEC, rows="scoring") == b""


def test_outcome_rejects_are_what_outcomes_py_leaves_out() -> None:
    import io
    import sys

    sys.path.insert(0, str(REPO / "transforms"))
    try:
        import outcomes as outcomes_py  # transforms/outcomes.py
    finally:
        sys.path.pop(0)
    messages = [b"11,1", b"12,0\r\n", b"abc,1", b"13,1.5", b"", b"id,match", b"14,1,0", b"15,0"]
    raw = encode_frames(messages)
    rejects = reject_rows(raw, SPEC, rows="outcomes").splitlines()
    assert [line.split(b"\t")[1:3] for line in rejects] == [
        [b"2", b"column 'id': id must be an integer that fits BIGINT (outcomes.id), got 'abc'"],
        [b"3", b"column 'match': label must be 0 or 1, got '1.5'"],
        [b"4", b"empty message"],
        [b"5", b"this is the CSV header; send data rows only"],
        [b"6", b"expected 2 fields (id, match), got 3"],
    ]
    out = io.StringIO()
    assert outcomes_py.main(io.BytesIO(raw), out, ["--spec", str(REPO / "data" / "features.json"),
                                                   "--on-bad-row", "skip"]) == 0
    assert out.getvalue() == "11\t1\n12\t0\n15\t0\n"
    failing = io.StringIO()
    assert outcomes_py.main(io.BytesIO(raw), failing,
                            ["--spec", str(REPO / "data" / "features.json")]) == 1
    assert failing.getvalue() == ""

from __future__ import annotations

from pathlib import Path

import pytest

from matchstream.ml.errors import ModelStoreError, NoModelYet
from matchstream.ml.rows import METRICS_COLUMNS, format_metrics, timestamp
from matchstream.ml.store import ModelStore


def publish(store: ModelStore, version: int) -> None:
    with store.lock():
        store.publish(version, {"model.json": b'{"v": %d}' % version})


def test_publish_moves_latest_and_prunes(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "m", keep=3)
    store.ensure()
    with pytest.raises(NoModelYet):
        store.read_live_model()
    for v in range(1, 6):
        publish(store, v)
    assert store.read_live_model() == (5, {"v": 5})
    assert store.listed_versions() == [3, 4, 5]
    assert not list((tmp_path / "m").glob(".tmp-*")) and not list((tmp_path / "m").glob("LATEST.*"))
    with pytest.raises(ModelStoreError, match="already exists"):
        publish(store, 5)


def test_corrupt_and_missing_stores_name_the_path(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "m")
    with pytest.raises(ModelStoreError) as info:
        store.read_live_model()
    assert info.value.path == str(tmp_path / "m")
    store.ensure()
    (tmp_path / "m" / "LATEST").write_text("v000007\n")
    with pytest.raises(ModelStoreError) as info:
        store.read_live_model()
    assert "no model.json" in info.value.reason
    publish(store, 7)
    (store.version_dir(7) / "model.json").write_text("{not json")
    with pytest.raises(ModelStoreError, match="corrupt JSON"):
        store.read_live_model()


def test_wait_for_first_version_times_out(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    with pytest.raises(NoModelYet):
        store.wait_live_model(0.3, poll=0.05)


def test_keep_below_two_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        ModelStore(tmp_path, keep=1)


def test_metrics_row_format() -> None:
    values = dict.fromkeys(METRICS_COLUMNS, 1.5) | {"auc": None, "rows": 3}
    line = format_metrics(values)
    fields = line.rstrip("\n").split("\t")
    assert len(fields) == len(METRICS_COLUMNS) == 25
    assert fields[METRICS_COLUMNS.index("auc")] == "\\N"
    assert fields[1] == "3" and line.endswith("\n")
    stamp = timestamp()
    assert len(stamp) == 26 and stamp[10] == " " and stamp[19] == "."

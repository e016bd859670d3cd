"""The kcat library link of matchstream.kafka_clients, on the venv's real confluent-kafka wheel."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from matchstream.kafka_clients import bundled_librdkafka, kcat_library_dir, reads_tansu


@pytest.fixture
def bundled() -> tuple[Path, str]:
    found = bundled_librdkafka()
    assert found is not None, "the pinned confluent-kafka wheel bundles librdkafka"
    return found


def test_the_wheel_bundles_a_librdkafka_that_reads_the_broker(bundled: tuple[Path, str]) -> None:
    path, version = bundled
    assert path.is_file() and ".so" in path.name
    assert reads_tansu(version), version


def test_link_is_made_once_and_a_stale_one_replaced(
    tmp_path: Path, bundled: tuple[Path, str]
) -> None:
    state = tmp_path / "state"
    directory = kcat_library_dir(state)
    assert directory == state / "kcat"
    link = directory / "librdkafka.so.1"
    assert Path(os.readlink(link)) == bundled[0]
    made = link.lstat().st_mtime_ns
    assert kcat_library_dir(state) == directory
    assert link.lstat().st_mtime_ns == made  # unchanged: no rewrite on every `status`
    link.unlink()
    link.symlink_to(tmp_path / "gone.so.1")  # another venv's, since removed
    assert kcat_library_dir(state) == directory
    assert Path(os.readlink(link)) == bundled[0]
    assert sorted(p.name for p in directory.iterdir()) == ["librdkafka.so.1"]

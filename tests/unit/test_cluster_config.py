"""The cluster file of ``matchstream cluster apply``: what it accepts, and each refusal naming
the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from matchstream.cluster.config import load_config
from matchstream.cluster.errors import ClusterConfigError
from matchstream.errors import MatchstreamError
from tests.unit.cluster_files import ARCHIVE_URI, BASE, PASSWORD, WITH_KAFKA_AUTH, write


def test_a_complete_file_is_read(tmp_path: Path) -> None:
    config = load_config(write(tmp_path))
    assert (config.host, config.port, config.user) == ("agg-1.example.com", 3307, "matchstream")
    assert config.password == PASSWORD
    assert config.kafka == "kafka-1.example.com:9092,kafka-2.example.com:9093"
    assert config.archive_uri == ARCHIVE_URI
    assert (config.model_dir, config.features) == ("/mnt/matchstream/models",
                                                   "/mnt/matchstream/features.json")
    assert config.kafka_config is None and config.ssl_ca is None
    # The password never shows in a repr (logs, tracebacks).
    assert PASSWORD not in repr(config)


def test_kafka_settings_are_read(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, WITH_KAFKA_AUTH))
    assert config.kafka_config == {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN"}
    assert config.kafka_credentials is not None
    assert "kafka-secret" not in repr(config)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_password_in_a_file_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = write(tmp_path, mode=mode)
    with pytest.raises(ClusterConfigError, match=f"chmod 600 {path}") as info:
        load_config(path)
    assert isinstance(info.value, MatchstreamError) and info.value.key == "singlestore"


def test_a_file_without_secrets_may_be_world_readable(tmp_path: Path) -> None:
    text = BASE.replace(f'password = "{PASSWORD}"\n', "")
    assert load_config(write(tmp_path, text, mode=0o644)).password == ""


@pytest.mark.parametrize("old, new, key, reason", [
    ('host = "agg-1.example.com"\n', "", "singlestore.host", "missing"),
    ("port = 3307", "port = 70000", "singlestore.port", "port number"),
    ('brokers = ["kafka-1.example.com:9092", "kafka-2.example.com:9093"]', 'brokers = []',
     "kafka.brokers", "missing"),
    ('"kafka-1.example.com:9092"', '"kafka 1:9092"', "kafka.brokers", "not a host:port"),
    (ARCHIVE_URI, "http://files.example.com/train.py", "transforms.archive_uri", ".tar.gz"),
    (ARCHIVE_URI, "/srv/matchstream-transforms.tar.gz", "transforms.archive_uri",
     "file://localhost/"),
    ('"/mnt/matchstream/models"', '"models"', "transforms.model_dir", "absolute path"),
    ('"/mnt/matchstream/features.json"', '"/mnt/my features.json"', "transforms.features",
     "without spaces"),
])
def test_a_wrong_setting_is_named(tmp_path: Path, old: str, new: str, key: str,
                                  reason: str) -> None:
    assert old in BASE
    path = write(tmp_path, BASE.replace(old, new))
    with pytest.raises(ClusterConfigError) as info:
        load_config(path)
    assert info.value.key == key and reason in info.value.reason
    assert str(info.value).startswith(f"{path}: [{key}]")


def test_bad_toml_says_where(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.replace("port = 3307", "port = = 3307"))
    with pytest.raises(ClusterConfigError, match=r"not a TOML file: .*line 3"):
        load_config(path)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ClusterConfigError, match="nope.toml: cannot read"):
        load_config(tmp_path / "nope.toml")

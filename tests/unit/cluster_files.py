"""Cluster files for the ``matchstream cluster`` tests."""

from __future__ import annotations

from pathlib import Path

ARCHIVE_URI = "http://files.example.com/dist/matchstream-transforms.tar.gz"
PASSWORD = "pw-0f1e2d3c"
KAFKA_SECRET = "kafka-secret-9a8b"

BASE = f"""\
[singlestore]
host = "agg-1.example.com"
port = 3307
user = "matchstream"
password = "{PASSWORD}"

[kafka]
brokers = ["kafka-1.example.com:9092", "kafka-2.example.com:9093"]

[transforms]
archive_uri = "{ARCHIVE_URI}"
model_dir = "/mnt/matchstream/models"
features = "/mnt/matchstream/features.json"
"""

WITH_KAFKA_AUTH = BASE.replace(
    'brokers = ["kafka-1.example.com:9092", "kafka-2.example.com:9093"]\n',
    'brokers = ["kafka-1.example.com:9092", "kafka-2.example.com:9093"]\n'
    'config = { "security.protocol" = "SASL_SSL", "sasl.mechanism" = "PLAIN" }\n'
    f'credentials = {{ "sasl.username" = "svc", "sasl.password" = "{KAFKA_SECRET}" }}\n')


def write(tmp_path: Path, text: str = BASE, mode: int = 0o600, name: str = "cluster.toml"
          ) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path

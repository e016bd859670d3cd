"""The cluster file: where the aggregator, the brokers, the archive and the model directory are.

TOML, because it holds a password and must not be a shell script; read with the standard
library. An example (README, "Bring your own SingleStore cluster")::

    [singlestore]
    host = "agg-1.example.com"      # the master aggregator (DDL goes there)
    port = 3306
    user = "matchstream"
    password = "..."                # this file must then be readable by its owner only
    ssl_ca = "/etc/ssl/certs/corp-ca.pem"   # optional: TLS, checking the server against it

    [kafka]
    brokers = ["kafka-1.example.com:9092", "kafka-2.example.com:9092"]
    config = { "security.protocol" = "SASL_SSL", "sasl.mechanism" = "PLAIN" }     # optional
    credentials = { "sasl.username" = "svc", "sasl.password" = "..." }            # optional

    [transforms]
    archive_uri = "http://files.example.com/matchstream-transforms.tar.gz"
    model_dir = "/mnt/matchstream/models"          # the same shared directory on every leaf
    features = "/mnt/matchstream/features.json"    # the feature spec, on every leaf

``[kafka] config`` and ``credentials`` become the pipelines' ``CONFIG`` and ``CREDENTIALS``
clauses (librdkafka properties, as SingleStore takes them).
"""

from __future__ import annotations

import json
import os
import re
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from matchstream.cluster.errors import ClusterConfigError
from matchstream.engine.extractor import CREDENTIAL_KEYS

__all__ = ["ClusterConfig", "load_config"]

# host[:port]: what SingleStore's KAFKA 'h1:p1,h2:p2/topic' endpoint takes.
_BROKER = re.compile(r"[A-Za-z0-9.\-\[\]:]+")
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")


@dataclass(frozen=True)
class ClusterConfig:
    path: str
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    ssl_ca: str | None
    brokers: tuple[str, ...]
    kafka_config: dict[str, Any] | None
    kafka_credentials: dict[str, Any] | None = field(repr=False)
    archive_uri: str
    model_dir: str
    features: str

    @property
    def kafka(self) -> str:
        """The brokers as SingleStore's ``KAFKA`` endpoint wants them: ``h1:p1,h2:p2``."""
        return ",".join(self.brokers)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def redact(self, text: str) -> str:
        """``text`` with the password and every Kafka credential value hidden: a parser's or a
        server's error quotes the statement around the fault, and that may be the secret."""
        secrets = [self.password, *(str(v) for v in (self.kafka_credentials or {}).values())]
        for secret in sorted((s for s in secrets if s), key=len, reverse=True):
            text = text.replace(secret, "<hidden>")
        return text


def load_config(path: Path | str) -> ClusterConfig:
    """Read and check the cluster file.

    Raises:
        ClusterConfigError: naming the file and the key, for a missing file, bad TOML (with
        line and column), a missing or wrong setting, or a password in a file that others can
        read.
    """
    name = str(path)
    try:
        raw = Path(path).read_bytes()
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise ClusterConfigError(name, f"cannot read: {exc.strerror}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ClusterConfigError(name, f"not a TOML file: {exc}") from exc
    reader = _Reader(name, data)
    s2 = reader.table("singlestore")
    kafka = reader.table("kafka")
    transforms = reader.table("transforms")
    password = reader.string(s2, "singlestore", "password", required=False) or ""
    if password and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ClusterConfigError(
            name, f"holds a password but is readable by others (mode {stat.S_IMODE(mode):04o}); "
            f"chmod 600 {name}", "singlestore")
    credentials = reader.mapping(kafka, "kafka", "credentials")
    for key in reader.mapping(kafka, "kafka", "config") or {}:
        if key in CREDENTIAL_KEYS:  # CONFIG is printed and not guarded by the file's mode
            raise ClusterConfigError(name, f"[kafka] config holds the secret {key!r}: put it "
                                     "in [kafka] credentials", "kafka.config")
    if credentials and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ClusterConfigError(
            name, f"holds Kafka credentials but is readable by others (mode "
            f"{stat.S_IMODE(mode):04o}); chmod 600 {name}", "kafka")
    return ClusterConfig(
        path=name,
        host=reader.string(s2, "singlestore", "host"),
        port=reader.port(s2, "singlestore"),
        user=reader.string(s2, "singlestore", "user"),
        password=password,
        ssl_ca=reader.string(s2, "singlestore", "ssl_ca", required=False) or None,
        brokers=reader.brokers(kafka),
        kafka_config=reader.mapping(kafka, "kafka", "config"),
        kafka_credentials=credentials,
        archive_uri=reader.archive_uri(transforms),
        model_dir=reader.leaf_path(transforms, "model_dir"),
        features=reader.leaf_path(transforms, "features"),
    )


class _Reader:
    """Typed access to the parsed TOML, every complaint naming the file and the key."""

    def __init__(self, path: str, data: dict[str, Any]) -> None:
        self.path, self.data = path, data

    def fail(self, key: str, reason: str) -> ClusterConfigError:
        return ClusterConfigError(self.path, reason, key)

    def table(self, name: str) -> dict[str, Any]:
        value = self.data.get(name)
        if not isinstance(value, dict):
            raise self.fail(name, "missing table" if value is None else "must be a table")
        return value

    def string(self, table: dict[str, Any], section: str, key: str, *,
               required: bool = True) -> str:
        value = table.get(key)
        if value is None and not required:
            return ""
        if not isinstance(value, str) or not value:
            raise self.fail(f"{section}.{key}",
                            "missing" if value is None else "must be a non-empty string")
        return value

    def port(self, table: dict[str, Any], section: str) -> int:
        value = table.get("port", 3306)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 65536:
            raise self.fail(f"{section}.port", f"must be a port number, got {value!r}")
        return value

    def brokers(self, table: dict[str, Any]) -> tuple[str, ...]:
        value = table.get("brokers")
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            raise self.fail("kafka.brokers", 'missing: a list of "host:port"')
        for broker in value:
            if not isinstance(broker, str) or not _BROKER.fullmatch(broker):
                raise self.fail("kafka.brokers", f"not a host:port: {broker!r}")
        return tuple(value)

    def mapping(self, table: dict[str, Any], section: str, key: str) -> dict[str, Any] | None:
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, dict) or not value:
            raise self.fail(f"{section}.{key}", "must be a non-empty table of librdkafka "
                            "properties")
        json.dumps(value)  # TOML tables are always JSON-able; dates would fail here
        return value

    def archive_uri(self, table: dict[str, Any]) -> str:
        uri = self.string(table, "transforms", "archive_uri")
        if not uri.startswith(("http://", "https://", "file://localhost/", "file:///")):
            raise self.fail("transforms.archive_uri", f"{uri!r}: SingleStore takes http(s):// "
                            "or file://localhost/ABSOLUTE/PATH (a file on the aggregator)")
        if not uri.split("?", 1)[0].endswith(_ARCHIVE_SUFFIXES):
            raise self.fail("transforms.archive_uri", f"{uri!r} must end in .tar.gz or .tgz "
                            "(matchstream cluster pack builds it)")
        if re.search(r"[\s'\\]", uri):
            raise self.fail("transforms.archive_uri", "must not contain spaces, quotes or "
                            "backslashes")
        return uri

    def leaf_path(self, table: dict[str, Any], key: str) -> str:
        value = self.string(table, "transforms", key)
        # Inserted into the transform's arguments, which SingleStore splits on spaces.
        if not PurePosixPath(value).is_absolute() or re.search(r"[\s'\"\\;$]", value):
            raise self.fail(f"transforms.{key}", f"{value!r} must be an absolute path without "
                            "spaces or quotes (the same path on every leaf)")
        return value.rstrip("/") or "/"

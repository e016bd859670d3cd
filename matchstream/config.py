"""One frozen configuration object: argument > ``MATCHSTREAM_*`` environment variable > default.

Every setting has exactly one name. The environment variable is ``MATCHSTREAM_`` + the field name
in upper case, and the CLI flag is ``--`` + the field name with dashes, so an error can always name
the setting to change (see :meth:`Config.setting_name`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from matchstream.errors import MatchstreamError

__all__ = ["ENV_PREFIX", "Config", "ConfigError", "project_root"]

ENV_PREFIX = "MATCHSTREAM_"


class ConfigError(MatchstreamError):
    """A setting has a value matchstream cannot use; names the setting and where it came from."""

    def __init__(self, setting: str, value: str, reason: str) -> None:
        super().__init__(f"{setting}={value!r}: {reason}")
        self.setting, self.value, self.reason = setting, value, reason


def project_root() -> Path:
    """The checkout this package runs from, or the current directory for a plain install.

    The state directory defaults to ``<project>/.matchstream`` so that every command run from any
    sub-directory of the checkout talks to the same stack.
    """
    candidate = Path(__file__).resolve().parent.parent
    if (candidate / "pyproject.toml").is_file() and (candidate / "sql").is_dir():
        return candidate
    return Path.cwd()


@dataclass(frozen=True)
class Config:
    """Where the local stack lives and listens.

    Precedence: explicit argument > ``MATCHSTREAM_*`` variable > what the last ``matchstream up``
    recorded in ``<state_dir>/stack.json`` (so ``status``, ``sql`` and ``down`` find a stack
    started with other ports) > default.

    Ports default to values unlikely to clash with a developer's own services: 9092 is Kafka's
    usual port, and 3307 leaves a system MySQL/MariaDB on 3306 alone.
    """

    state_dir: Path = field(default_factory=lambda: project_root() / ".matchstream")
    host: str = "127.0.0.1"
    kafka_port: int = 9092
    db_port: int = 3307
    db_user: str = "root"
    topic_partitions: int = 1
    # Where to look for mariadbd and mariadb-install-db; empty means PATH and the usual sbin
    # directories. Set it for a MariaDB unpacked somewhere else.
    db_bin_dir: str = ""
    # A transform still running after this long is killed and its batch partition fails: long
    # enough for train.py on a large batch, short enough that a hung transform surfaces.
    transform_timeout_s: float = 300.0
    # How long `up` waits for a component to answer before giving up with its log's tail.
    start_timeout_s: float = 60.0
    # Where `matchstream dashboard` listens (on --host, 127.0.0.1 by default).
    dashboard_port: int = 8765

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Config:
        """Build the config from explicit ``overrides`` (None means unset), the environment,
        then defaults."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            explicit = overrides.get(f.name)
            if explicit is not None:
                values[f.name] = _coerce(f.name, f.type, explicit, source="argument")
                continue
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _coerce(f.name, f.type, raw, source="environment")
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown config fields: {sorted(unknown)}")
        config = cls(**values)
        recorded = config.recorded()
        settable = {k: v for k, v in recorded.items() if k in RECORDED_FIELDS and k not in values}
        if settable:
            config = replace(config, **settable)
        return config

    def recorded(self) -> dict[str, Any]:
        """What the last ``up`` with this state directory wrote down, or nothing."""
        try:
            data = json.loads((self.state_dir / "stack.json").read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def record(self) -> None:
        """Write down the addresses this stack was started with (called by ``up``)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        target = self.state_dir / "stack.json"
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps({k: getattr(self, k) for k in RECORDED_FIELDS}, indent=2) + "\n")
        os.replace(tmp, target)

    def with_(self, **changes: Any) -> Config:
        return replace(self, **changes)

    @staticmethod
    def setting_name(name: str) -> str:
        """How a user changes ``name``: the flag and the environment variable."""
        return f"--{name.replace('_', '-')} or {ENV_PREFIX}{name.upper()}"

    # Derived locations, one place for every path under the state directory.
    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def db_dir(self) -> Path:
        return self.state_dir / "mariadb"

    @property
    def db_password_file(self) -> Path:
        return self.state_dir / "mariadb.password"

    @property
    def db_socket(self) -> Path:
        return self.run_dir / "mariadb.sock"

    @property
    def kafka_bootstrap(self) -> str:
        return f"{self.host}:{self.kafka_port}"

    @property
    def db_client_file(self) -> Path:
        """A mysql client option file with the password, so it never appears in argv."""
        return self.state_dir / "client.cnf"

    def to_env(self) -> dict[str, str]:
        """The ``MATCHSTREAM_*`` variables that reproduce this config in a child process."""
        return {ENV_PREFIX + f.name.upper(): str(getattr(self, f.name)) for f in fields(self)}

    def db_password(self) -> str:
        """The generated root password; read on demand so it never sits in a repr or a log."""
        try:
            return self.db_password_file.read_text().strip()
        except FileNotFoundError as exc:
            raise ConfigError(
                "db_password_file",
                str(self.db_password_file),
                "no password file: has `matchstream up` run with this state directory?",
            ) from exc


# The settings ``up`` records: the ones other commands need to find a running stack.
RECORDED_FIELDS = ("host", "kafka_port", "db_port", "db_user")


def _coerce(name: str, annotation: Any, raw: Any, *, source: str) -> Any:
    kind = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    setting = (
        ENV_PREFIX + name.upper() if source == "environment" else "--" + name.replace("_", "-")
    )
    try:
        if kind == "int":
            value: Any = int(raw)
            if value < 0:
                raise ValueError("must not be negative")
            if name.endswith("_port") and not 1 <= value <= 65535:
                raise ValueError("a TCP port is between 1 and 65535")
            return value
        if kind == "float":
            return float(raw)
        if kind == "Path":
            return Path(raw).expanduser().resolve()
        return str(raw)
    except ValueError as exc:
        raise ConfigError(setting, str(raw), f"not a valid {kind}: {exc}") from exc

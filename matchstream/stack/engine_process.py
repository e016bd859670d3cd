"""The pipeline engine as a component of the local stack (``python -m matchstream.engine``)."""

from __future__ import annotations

import importlib.util
import os
import sys
import time

from matchstream.config import ENV_PREFIX, Config
from matchstream.stack.errors import ComponentStartError
from matchstream.stack.process import ManagedProcess

__all__ = ["EngineProcess"]

# The engine connects to MariaDB and the broker before it settles; a process still alive after
# this long got past its start-up checks (they exit non-zero with a message in the log).
SETTLE_S = 1.5


class EngineProcess:
    name = "engine"

    def __init__(self, config: Config) -> None:
        self.config = config
        self.process = ManagedProcess(self.name, config.run_dir, config.log_dir)

    @property
    def address(self) -> str:
        return f"pid file {self.process.pid_file}"

    @staticmethod
    def available() -> bool:
        try:
            return importlib.util.find_spec("matchstream.engine.__main__") is not None
        except ModuleNotFoundError:
            return False

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        c = self.config
        env.update(
            {
                ENV_PREFIX + "STATE_DIR": str(c.state_dir),
                ENV_PREFIX + "HOST": c.host,
                ENV_PREFIX + "KAFKA_PORT": str(c.kafka_port),
                ENV_PREFIX + "DB_PORT": str(c.db_port),
                ENV_PREFIX + "DB_USER": c.db_user,
            }
        )
        # Transforms are started by the engine with `#!/usr/bin/env python3`: put this
        # interpreter's bin directory first so they see the same installed packages.
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        return env

    def start(self) -> None:
        self.process.start([sys.executable, "-m", "matchstream.engine"], env=self.env())

    def wait_ready(self) -> None:
        deadline = time.monotonic() + SETTLE_S
        while time.monotonic() < deadline:
            if self.process.exited_early():
                raise ComponentStartError(
                    component=self.name,
                    reason="the engine process exited during start-up",
                    log_path=self.process.log_file,
                    log_tail=self.process.log_tail(),
                )
            time.sleep(0.1)

    def answers(self) -> bool:
        return self.process.running_pid() is not None

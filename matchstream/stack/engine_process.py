"""The pipeline engine as a component of the local stack (``python -m matchstream.engine``)."""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from collections.abc import MutableMapping

from matchstream.config import Config
from matchstream.stack.errors import ComponentStartError
from matchstream.stack.process import ManagedProcess

__all__ = ["EngineProcess", "prepend_interpreter"]


def prepend_interpreter(env: MutableMapping[str, str]) -> None:
    """Put this interpreter's bin directory first on ``env["PATH"]``.

    Transforms start with ``#!/usr/bin/env python3`` and must find this interpreter, with the
    project's packages, as the image's only python3 is found in the container path. The engine
    gives each transform its own minimal environment with that PATH
    (``transform_runner.transform_environment``); this is for the engine's own environment and
    for scripts and tests that start transforms themselves.
    """
    bin_dir = os.path.dirname(sys.executable)
    path = env.get("PATH", "")
    if path.split(os.pathsep)[0] != bin_dir:
        env["PATH"] = bin_dir + os.pathsep + path


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
        env = {**os.environ, **self.config.to_env()}
        prepend_interpreter(env)
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

"""Errors of the local stack, each naming what to change or install."""

from __future__ import annotations

from pathlib import Path

from matchstream.errors import MatchstreamError

__all__ = ["ComponentStartError", "MissingBinaryError", "PortInUseError", "StackError"]


class StackError(MatchstreamError):
    """Something about the local stack (broker, MariaDB, engine) went wrong."""


class PortInUseError(StackError):
    """The port a component should listen on is taken by another process."""

    def __init__(self, *, component: str, host: str, port: int, setting: str) -> None:
        super().__init__(
            f"{component}: port {port} on {host} is already in use by another process; "
            f"choose a free port with {setting}"
        )
        self.component, self.host, self.port, self.setting = component, host, port, setting


class MissingBinaryError(StackError):
    """A program the stack runs is not installed."""

    def __init__(self, *, binary: str, install_hint: str) -> None:
        super().__init__(f"{binary} was not found; install it with: {install_hint}")
        self.binary, self.install_hint = binary, install_hint


class ComponentStartError(StackError):
    """A component did not come up; carries the tail of its log."""

    def __init__(
        self, *, component: str, reason: str, log_path: Path | None, log_tail: str = ""
    ) -> None:
        where = f" (log: {log_path})" if log_path else ""
        tail = f"\n--- last lines of the log ---\n{log_tail}" if log_tail else ""
        super().__init__(f"{component} did not start: {reason}{where}{tail}")
        self.component, self.reason, self.log_path = component, reason, log_path

"""Port checks: a clear error before a component fails to bind."""

from __future__ import annotations

import socket

from matchstream.stack.errors import PortInUseError

__all__ = ["ensure_port_free", "free_port", "port_answers"]


def port_answers(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def ensure_port_free(*, component: str, host: str, port: int, setting: str) -> None:
    """Raise :class:`PortInUseError` naming ``setting`` when ``port`` cannot be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR matches what the servers do, so a port in TIME_WAIT after our own `down`
        # is not reported as taken.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise PortInUseError(
                component=component, host=host, port=port, setting=setting
            ) from exc


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel says is free now (tests use it to avoid a developer's stack)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])

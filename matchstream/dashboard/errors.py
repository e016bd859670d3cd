"""Errors of ``matchstream dashboard`` and ``matchstream report``."""

from __future__ import annotations

from matchstream.errors import MatchstreamError

__all__ = ["DashboardCannotListen", "DashboardError"]


class DashboardError(MatchstreamError):
    """The dashboard cannot serve or the report cannot be written."""


class DashboardCannotListen(DashboardError):
    """The dashboard cannot listen where asked (the port is taken, the address is not this
    machine's); names the address and the settings that chose it."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(f"cannot listen on {host}:{port}: {reason} (choose another port with "
                         "--port or MATCHSTREAM_DASHBOARD_PORT, another address with --host)")
        self.host, self.port, self.reason = host, port, reason

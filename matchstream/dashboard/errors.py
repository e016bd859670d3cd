"""Errors of ``matchstream dashboard`` and ``matchstream report``."""

from __future__ import annotations

from matchstream.errors import MatchstreamError

__all__ = ["DashboardError", "DashboardPortInUse"]


class DashboardError(MatchstreamError):
    """The dashboard cannot serve or the report cannot be written."""


class DashboardPortInUse(DashboardError):
    """The address the dashboard should listen on is taken; names it and the setting."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(f"cannot listen on {host}:{port}: {reason} (choose another port with "
                         "--port or MATCHSTREAM_DASHBOARD_PORT)")
        self.host, self.port, self.reason = host, port, reason

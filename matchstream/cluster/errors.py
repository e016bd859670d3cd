"""Errors of ``matchstream cluster``: each names the file (and key or statement) it comes from."""

from __future__ import annotations

from matchstream.errors import MatchstreamError

__all__ = ["ClusterApplyError", "ClusterConfigError", "ClusterPackError", "ClusterRenderError"]


class ClusterConfigError(MatchstreamError):
    """The cluster file is missing, unreadable, malformed, or a setting in it is wrong."""

    def __init__(self, path: str, reason: str, key: str | None = None) -> None:
        where = f"{path}: [{key}]" if key else path
        super().__init__(f"{where}: {reason}")
        self.path, self.key, self.reason = path, key, reason


class ClusterPackError(MatchstreamError):
    """The archive cannot be built: a file it needs is not in the checkout."""

    def __init__(self, root: str, missing: list[str]) -> None:
        super().__init__(f"{root}: not a matchstream checkout, missing {', '.join(missing)} "
                         "(pack from the repository the transforms live in)")
        self.root, self.missing = root, missing


class ClusterRenderError(MatchstreamError):
    """A statement of sql/ cannot be rendered for the cluster, at ``file:line:col``."""

    def __init__(self, location: str, reason: str) -> None:
        super().__init__(f"{location}: {reason}")
        self.location, self.reason = location, reason


class ClusterApplyError(MatchstreamError):
    """The cluster refused a statement (or could not be reached), naming the statement."""

    def __init__(self, location: str, reason: str, code: int | None = None) -> None:
        prefix = f"{location}: " if location else ""
        suffix = f" (error {code})" if code is not None else ""
        super().__init__(f"{prefix}{reason}{suffix}")
        self.location, self.reason, self.code = location, reason, code

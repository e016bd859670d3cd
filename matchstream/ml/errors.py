"""Errors of the model package, each naming where the problem is (a message index, a path)."""

from __future__ import annotations

from pathlib import Path

from matchstream.errors import MatchstreamError

__all__ = ["BadRow", "EstimatorMismatch", "MlError", "ModelStoreError", "NoModelYet", "SpecError"]


class MlError(MatchstreamError):
    """Base of the model package's errors."""


class SpecError(MlError):
    """The feature spec file is unreadable or inconsistent; ``path`` names the file."""

    def __init__(self, reason: str, *, path: Path | str) -> None:
        super().__init__(f"feature spec {path}: {reason}")
        self.reason, self.path = reason, str(path)


class BadRow(MlError):
    """One message of a batch cannot be used.

    ``index`` is the zero-based position of the message in the batch (the same numbering as
    :class:`matchstream.framing.FramingError`), ``column`` the spec column at fault if any.
    """

    def __init__(self, reason: str, *, index: int, column: str | None = None) -> None:
        where = f"message {index}" + (f", column {column!r}" if column else "")
        super().__init__(f"bad row in {where}: {reason}")
        self.reason, self.index, self.column = reason, index, column


class ModelStoreError(MlError):
    """The model directory is missing, corrupt or not writable; ``path`` names what failed."""

    def __init__(self, reason: str, *, path: Path | str) -> None:
        super().__init__(f"model store {path}: {reason}")
        self.reason, self.path = reason, str(path)


class NoModelYet(ModelStoreError):
    """Scoring was asked for before any training batch published a version."""


class EstimatorMismatch(ModelStoreError):
    """``train.py --model X`` on a directory whose versions another estimator wrote: a model
    directory holds one estimator (its versions continue each other's weights)."""

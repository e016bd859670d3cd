"""The root of every error matchstream raises on purpose.

Each subsystem declares its narrow subclasses next to its code (``matchstream/stack/errors.py``,
``matchstream/ddl/errors.py``, ``matchstream/ml/errors.py``, ...), each carrying the location
fields a user needs to find the cause: a port and the setting that chose it, a SQL line and column,
a ``topic[partition]@offset``, a file and line.
"""

from __future__ import annotations

__all__ = ["MatchstreamError"]


class MatchstreamError(Exception):
    """Base of every error matchstream raises on purpose.

    The CLI prints these as one readable message (no stack trace) and exits non-zero; anything
    else escaping is a bug and keeps its traceback.
    """

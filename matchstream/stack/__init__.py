"""The local stack: a Tansu broker, a private MariaDB and the pipeline engine."""

from matchstream.stack.stack import ComponentStatus, Stack

__all__ = ["ComponentStatus", "Stack"]

"""Errors of the pipeline statement parser and the SQL script splitter.

Every error carries where it happened (``line``, ``col``, both 1-based, and ``source`` when the
text came from a file) and the offending text (``snippet``), so a user can find the cause without
reading a traceback. Tests assert these fields, not the message.
"""

from __future__ import annotations

from matchstream.errors import MatchstreamError

__all__ = ["DdlError", "DdlSyntaxError", "ScriptError", "UnsupportedByLocalEngine"]

_SNIPPET_MAX = 40


class DdlError(MatchstreamError):
    """Base of the positioned errors below.

    Args:
        reason: what is wrong, without the position.
        line: 1-based line of the offending text (in the file, for script statements).
        col: 1-based column (characters, not bytes).
        snippet: the offending text, shortened to 40 characters.
        source: file name or ``<string>``-style label; None when unknown.
        context: the whole source line, for the caret display.
    """

    def __init__(
        self,
        reason: str,
        line: int,
        col: int,
        snippet: str,
        *,
        source: str | None = None,
        context: str | None = None,
    ) -> None:
        if len(snippet) > _SNIPPET_MAX:
            snippet = snippet[: _SNIPPET_MAX - 3] + "..."
        self.reason = reason
        self.line = line
        self.col = col
        self.snippet = snippet
        self.source = source
        self.context = context
        super().__init__(self._message())

    @property
    def location(self) -> str:
        """``file:line:col`` (or ``line:col`` without a source)."""
        where = f"{self.line}:{self.col}"
        return f"{self.source}:{where}" if self.source else where

    def _message(self) -> str:
        text = f"{self.location}: {self.reason}"
        if self.snippet:
            text += f" near {self.snippet!r}"
        if self.context is not None and self.context.strip():
            line = self.context.replace("\t", " ")
            text += f"\n    {line}\n    {' ' * (self.col - 1)}^"
        return text


class DdlSyntaxError(DdlError):
    """The statement is not valid pipeline DDL, or combines clauses SingleStore rejects."""


class UnsupportedByLocalEngine(DdlError):
    """Valid SingleStore syntax that the local engine does not implement.

    Raised instead of ignoring the clause, so a statement never means less locally than on
    SingleStore. ``reason`` always contains "not supported by the local engine".
    """


class ScriptError(DdlError):
    """A SQL script cannot be split or its placeholders cannot be substituted."""

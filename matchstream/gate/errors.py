"""The gate's one error: a statement refused before MariaDB sees it."""

from __future__ import annotations

from matchstream.ddl.errors import DdlError

__all__ = ["GateRefusal"]


class GateRefusal(DdlError):
    """SingleStore rejects the statement (or the local engine cannot do what SingleStore would),
    so it is refused at ``source:line:col`` before it runs.

    ``construct`` names what was refused (``CREATE OR REPLACE VIEW``), ``alternative`` is the
    way to write it that SingleStore accepts, ``reference`` the documentation saying so. Tests
    assert these fields, not the message.
    """

    def __init__(
        self,
        construct: str,
        why: str,
        alternative: str,
        reference: str,
        *,
        line: int,
        col: int,
        snippet: str,
        source: str | None = None,
        context: str | None = None,
    ) -> None:
        self.construct, self.why = construct, why
        self.alternative, self.reference = alternative, reference
        reason = f"{construct}: {why}; instead: {alternative} (see {reference})"
        super().__init__(reason, line, col, snippet, source=source, context=context)

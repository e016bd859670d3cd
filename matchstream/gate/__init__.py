"""The SingleStore gate: every statement ``matchstream sql`` sends to MariaDB passes it first.

:func:`check_statement` answers one statement with a verdict, or raises :class:`GateRefusal`
(``file:line:col``, the construct, the SingleStore way to write it and the documentation page):

* what SingleStore rejects is refused (:mod:`.refusals`): ``CREATE OR REPLACE VIEW``, triggers,
  foreign keys, ``ENGINE=``, ...; a restricted keyword as a bare name is a warning
  (:mod:`.keywords`: SingleStore's own examples use some listed words unquoted);
* what SingleStore has and MariaDB lacks is translated (:mod:`.translation`) or emulated
  (:mod:`.settings`): ``information_schema.PIPELINES*``, ``@@pipelines_*``, ``SET GLOBAL
  pipelines_*``, ``SHOW VARIABLES``;
* everything else is forwarded as written.

>>> check_statement("SELECT 1")
Forward(text='SELECT 1', uses_catalog=False, warnings=())
>>> check_statement("CREATE OR REPLACE VIEW v AS SELECT 1", source="v.sql").location
Traceback (most recent call last):
...
matchstream.gate.errors.GateRefusal: v.sql:1:8: CREATE OR REPLACE VIEW: ...
"""

from __future__ import annotations

from dataclasses import dataclass

from matchstream.gate.errors import GateRefusal
from matchstream.gate.keywords import restricted_identifier
from matchstream.gate.refusals import refusals
from matchstream.gate.settings import SetVariables, ShowVariables, set_variables, show_variables
from matchstream.gate.statement import GateStatement
from matchstream.gate.translation import translate

__all__ = [
    "Forward",
    "GateRefusal",
    "SetVariables",
    "ShowVariables",
    "Verdict",
    "check_statement",
]


@dataclass(frozen=True)
class Forward:
    """Send ``text`` to MariaDB (the statement, translated where needed); ``uses_catalog``:
    it reads the local pipeline catalog, which must exist first."""

    text: str
    uses_catalog: bool = False
    warnings: tuple[str, ...] = ()  # shown before it runs; the statement still runs


Verdict = Forward | SetVariables | ShowVariables


def check_statement(
    text: str, *, source: str = "<string>", line: int = 1, col: int = 1
) -> Verdict:
    """The gate's verdict on one non-pipeline statement that starts at ``source:line:col``."""
    stmt = GateStatement(text, source, line, col)
    for refusal in refusals(stmt):
        raise refusal
    words = stmt.words(1)
    if words == ["SET"]:
        setting = set_variables(stmt)
        if setting is not None:
            return setting
    elif words == ["SHOW"]:
        showing = show_variables(stmt)
        if showing is not None:
            return showing
    keyword = restricted_identifier(stmt)
    translation = translate(stmt)
    warnings = (f"warning: {keyword}",) if keyword is not None else ()
    return Forward(translation.text, translation.uses_catalog, warnings)

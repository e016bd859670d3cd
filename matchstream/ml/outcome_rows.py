"""Outcome rows: the true ``id,match`` of a scored date, sent later on the ``outcomes`` topic.

An outcome row has two fields, the spec's id column and its label column (``id,match`` with the
shipped spec), and is checked with the same rules and words as a training row's id and label
(:mod:`matchstream.ml.rowparse`): one CSV line per message, an id that fits ``outcomes.id
BIGINT``, a label of 0 or 1. ``transforms/outcomes.py`` prints the good ones for the
``outcomes`` pipeline, ``transforms/rejects.py --rows outcomes`` the bad ones, and
``matchstream produce outcomes`` refuses what both would refuse, so the three always agree.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from matchstream.ml.errors import BadRow
from matchstream.ml.rowparse import bigint_id, id_reason, label_value, split_fields, strip_newlines
from matchstream.ml.spec import FeatureSpec

__all__ = ["OUTCOMES_ID_TABLE", "OutcomeBatch", "OutcomeDecoder", "decode_outcomes",
           "iter_outcome_rejects", "outcome_columns"]

# Where an outcome's id is loaded: an id that column would refuse is a bad row before LOAD DATA.
OUTCOMES_ID_TABLE = "outcomes.id"


def outcome_columns(spec: FeatureSpec) -> tuple[str, str]:
    """The fields of an outcome row, in order: the spec's id and label columns."""
    return (spec.id, spec.label)


class OutcomeDecoder:
    """Decodes one message into ``(id, label)`` with the label 0 or 1, or raises BadRow."""

    def __init__(self, spec: FeatureSpec) -> None:
        self.columns = outcome_columns(spec)

    def decode(self, line: bytes, position: int) -> tuple[str, int]:
        row_id, text = split_fields(line, position, self.columns)
        if not row_id:
            raise BadRow("id is empty", index=position, column=self.columns[0])
        if not bigint_id(row_id):
            raise BadRow(id_reason(row_id, OUTCOMES_ID_TABLE), index=position,
                         column=self.columns[0])
        return row_id, int(label_value(text, position, self.columns[1]))


@dataclass
class OutcomeBatch:
    rows: list[tuple[str, int]] = field(default_factory=list)
    skipped: list[BadRow] = field(default_factory=list)


def decode_outcomes(payloads: Sequence[bytes], spec: FeatureSpec, *, skip_bad: bool
                    ) -> OutcomeBatch:
    """Every message of a batch decoded (one trailing newline each dropped first, as for
    training rows); a bad one is raised, or under ``skip_bad`` left out and listed.

    >>> spec = FeatureSpec.from_dict({"id": "id", "label": "match",
    ...                               "columns": ["id", "match", "x"], "numeric": {"x": {}}})
    >>> batch = decode_outcomes([b"7,1\\n", b"8,2", b"9,0"], spec, skip_bad=True)
    >>> batch.rows, [(b.index, b.reason) for b in batch.skipped]
    ([('7', 1), ('9', 0)], [(1, "label must be 0 or 1, got '2'")])
    """
    decoder = OutcomeDecoder(spec)
    batch = OutcomeBatch()
    for position, line in enumerate(strip_newlines(payloads)):
        try:
            batch.rows.append(decoder.decode(line, position))
        except BadRow as bad:
            if not skip_bad:
                raise
            batch.skipped.append(bad)
    return batch


def iter_outcome_rejects(payloads: Sequence[bytes], spec: FeatureSpec) -> Iterator[BadRow]:
    """The bad outcome rows of a batch, in order (what ``outcomes.py --on-bad-row skip``
    leaves out)."""
    yield from decode_outcomes(payloads, spec, skip_bad=True).skipped

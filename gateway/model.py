"""Domain records shared by the engine, the snapshot, the store and the API.

Plain msgspec Structs: cheap to build, hash and encode, and the same shape on
the wire as in memory. Dates are ``datetime.date`` (ISO 8601 on the wire).
"""

from __future__ import annotations

from datetime import date
from typing import Final, Literal

import msgspec

EntryStatus = Literal["active", "objection_pending", "repaired", "revoked", "expired"]
ACTIVE: Final = "active"
OBJECTION_PENDING: Final = "objection_pending"
#: Statuses under which an entry can still produce measures (if in force by date).
LIVE_STATUSES: Final = frozenset({ACTIVE, OBJECTION_PENDING})

ListKind = Literal["black", "focus", "abnormal", "red"]
MeasureKind = Literal["punishment", "management", "incentive"]
Strength = Literal["mandatory", "discretionary"]
MeasureState = Literal["apply", "suspended"]
Verdict = Literal["restricted", "attention", "incentive", "clear"]
GradeValue = Literal["excellent", "good", "fair", "poor"]


class ListEntry(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """One listing of a subject by an authority (the 发起 side of the loop)."""

    entry_id: str
    uscc: str
    list_type: str
    listed_on: date
    expires_on: date | None = None
    status: EntryStatus = "active"
    subject_name: str = ""
    authority: str = ""
    reason: str = ""
    basis: str = ""
    document_no: str = ""
    source: str = ""
    source_id: str = ""

    def in_force_on(self, day: date) -> bool:
        """True when ``day`` lies within ``listed_on`` .. ``expires_on`` (both inclusive)."""
        return self.listed_on <= day and (self.expires_on is None or day <= self.expires_on)


class Grade(msgspec.Struct, frozen=True, gc=False):
    """A subject's credit grade (分级分类) from a named source, as of a date."""

    value: GradeValue
    source: str = ""
    as_of: date | None = None


class Measure(msgspec.Struct, frozen=True, gc=False):
    """A measure the engine returns for one check, with why it applies."""

    code: str
    name: str
    kind: MeasureKind
    strength: Strength
    state: MeasureState
    basis: tuple[str, ...]
    #: Entry ids, ``grade:<value>`` or ``commitment``.
    triggered_by: tuple[str, ...]


class Decision(msgspec.Struct, frozen=True, gc=False):
    """What the engine decided for one subject and one matter."""

    verdict: Verdict
    #: The entries that were live and in force on the day of the check, in input order.
    hits: tuple[ListEntry, ...]
    measures: tuple[Measure, ...]
    #: True when any measure is in state ``apply``: the caller owes feedback (反馈).
    feedback_required: bool

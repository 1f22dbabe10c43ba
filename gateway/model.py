"""Domain records shared by the engine, the snapshot, the store and the API.

Plain msgspec Structs: cheap to build, hash and encode, and the same shape on
the wire as in memory. Dates are ``datetime.date`` (ISO 8601 on the wire).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Final, Literal, TypeAlias

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


#: What the packed snapshot keeps of an entry, raw, as the store reads it: ``(uscc,
#: entry_id, list_type, status, listed_on, expires_on, subject_name, authority,
#: document_no)``, dates as proleptic ordinals (``date.toordinal``; ``None`` for none).
EntryRecord: TypeAlias = tuple[str, str, str, str, int, int | None, str, str, str]


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


# --- callers, checks and feedback (the 响应 and 反馈 sides of the loop) ---------------

Scope = Literal["check", "feedback", "lists", "reports", "admin"]
SCOPES: Final[tuple[Scope, ...]] = ("check", "feedback", "lists", "reports", "admin")


class Caller(msgspec.Struct, frozen=True, gc=False):
    """A calling system of a department (响应部门), as one of its API keys identifies it."""

    caller_id: int
    name: str
    department: str
    scopes: frozenset[str]
    #: Public id of the key used (never the key itself).
    key_id: str = ""


#: The canonical entry fields, in the order of API.md (CSV header, JSONL keys, XLSX row).
ENTRY_FIELDS: Final = (
    "uscc",
    "subject_name",
    "list_type",
    "authority",
    "reason",
    "basis",
    "document_no",
    "listed_on",
    "expires_on",
    "source",
    "source_id",
)


#: Free text of an entry as the API and imports accept it (``gateway.lists.MAX_TEXT``
#: rejects a longer row with its field named).
EntryText: TypeAlias = Annotated[str, msgspec.Meta(max_length=2000)]


class EntryInput(msgspec.Struct, frozen=True, kw_only=True):
    """Canonical entry fields, as the API and file imports carry them (API.md, Lists)."""

    uscc: str
    list_type: str
    listed_on: date
    subject_name: EntryText = ""
    authority: EntryText = ""
    reason: EntryText = ""
    basis: EntryText = ""
    document_no: EntryText = ""
    expires_on: date | None = None
    source: EntryText = ""
    source_id: EntryText = ""


class StatusChange(msgspec.Struct, frozen=True, kw_only=True):
    """One line of an entry's append-only status history."""

    entry_id: str
    status: EntryStatus
    changed_at: str
    actor: str
    note: str = ""
    #: Dates and document numbers of the act (repaired_on, decision_no, opened_on ...).
    details: dict[str, str] = {}


class CheckRecord(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """A check as answered, recorded durably before the caller gets its 200."""

    check_id: str
    caller_id: int
    matter: str
    uscc: str
    verdict: Verdict
    hit_ids: tuple[str, ...]
    #: (code, state) of every measure returned.
    measures: tuple[tuple[str, str], ...]
    snapshot_version: int
    catalog_version: str
    checked_at: str
    latency_us: int
    #: The response body exactly as sent (JSON).
    response: bytes
    matter_code: str | None = None
    case_ref: str | None = None
    batch_id: str | None = None


class MeasureFeedback(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    code: str
    executed: bool
    reason: str | None = None


class FeedbackRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What the calling department reports back about one check (反馈)."""

    check_id: str
    caller_id: int
    measures: tuple[MeasureFeedback, ...]
    outcome: str = ""
    handled_by: str | None = None
    handled_at: str | None = None
    received_at: str = ""
    #: Canonical JSON of the request body, to tell an identical retry from a conflict.
    body: bytes = b""

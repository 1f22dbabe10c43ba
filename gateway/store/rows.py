"""Conversions between database rows and the domain Structs, ids and timestamps."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, Final

import msgspec

from gateway.model import Grade, ListEntry, StatusChange

#: Column order of :func:`entry_from_row`.
ENTRY_COLUMNS: Final = (
    "entry_id, uscc, list_type, listed_on, expires_on, status, subject_name, "
    "authority, reason, basis, document_no, source, source_id"
)
#: Column order of :func:`grade_from_row` (after a leading ``uscc`` where needed).
GRADE_COLUMNS: Final = "value, source, as_of"

_encoder: Final = msgspec.json.Encoder()
_details_decoder: Final = msgspec.json.Decoder(dict[str, str])


def now_iso() -> str:
    """The current local time, ISO 8601 with offset, to the millisecond."""
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


def new_id() -> str:
    """A UUIDv7 as 32 hex digits: time-ordered, so inserts append to the index."""
    return new_ids(1)[0]


def new_ids(count: int) -> list[str]:
    """``count`` UUIDv7s (32 hex digits each) from one clock read and one urandom call."""
    prefix = f"{time.time_ns() // 1_000_000 & 0xFFFF_FFFF_FFFF:012x}7"
    rand = os.urandom(10 * count).hex()
    ids = []
    for start in range(0, 20 * count, 20):
        r = rand[start : start + 20]
        # version 7 (above), variant 0b10 in the top bits of the 17th digit
        ids.append(f"{prefix}{r[:3]}{_VARIANT[r[3]]}{r[4:19]}")
    return ids


_VARIANT: Final = {f"{n:x}": "89ab"[n & 3] for n in range(16)}


def to_json(value: object) -> str:
    """Compact JSON as text (bytes would be stored as a BLOB)."""
    return _encoder.encode(value).decode()


def iso_or_none(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


def date_or_none(text: str | None) -> date | None:
    return None if text is None else date.fromisoformat(text)


def entry_from_row(row: Sequence[Any]) -> ListEntry:
    """A :class:`ListEntry` from a row selected with :data:`ENTRY_COLUMNS` (dates as ISO text)."""
    return entry_from_values(row, date.fromisoformat(row[3]), date_or_none(row[4]))


def entry_from_values(row: Sequence[Any], listed_on: date, expires_on: date | None) -> ListEntry:
    """A :class:`ListEntry` from a row selected with :data:`ENTRY_COLUMNS`, its two dates
    already read (each backend stores them its own way)."""
    return ListEntry(
        entry_id=row[0],
        uscc=row[1],
        list_type=row[2],
        listed_on=listed_on,
        expires_on=expires_on,
        status=row[5],
        subject_name=row[6],
        authority=row[7],
        reason=row[8],
        basis=row[9],
        document_no=row[10],
        source=row[11],
        source_id=row[12] or "",
    )


def grade_from_row(row: Sequence[Any]) -> Grade:
    """A :class:`Grade` from a row selected with :data:`GRADE_COLUMNS`."""
    return Grade(row[0], row[1], date_or_none(row[2]))


def status_change_from_row(row: Sequence[Any]) -> StatusChange:
    """From ``entry_id, status, changed_at, actor, note, details``."""
    return StatusChange(
        entry_id=row[0],
        status=row[1],
        changed_at=row[2],
        actor=row[3],
        note=row[4],
        details=_details_decoder.decode(row[5]),
    )

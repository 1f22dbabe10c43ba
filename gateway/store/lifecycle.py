"""The status lifecycle of list entries (SQL), as API.md (Lists) and DOMAIN.md §7 state it::

    active ──open_objection──► objection_pending ──resolve(upheld)──► revoked
      ▲                               │
      └────────resolve(not upheld)────┘
    active | objection_pending ──repair──► repaired
    active | objection_pending ──revoke──► revoked
    active (expires_on < today) ──mark_expired──► expired

Each function runs inside one ``BEGIN IMMEDIATE`` transaction opened by
:class:`~gateway.store.Store` (so the status it checks cannot change under it)
and appends a history row and a change row per entry it moves.
"""

from __future__ import annotations

from datetime import date
from typing import Final, NamedTuple

import aiosqlite
import msgspec

from gateway.model import ACTIVE, OBJECTION_PENDING, EntryStatus, ListEntry
from gateway.store import audit, entries
from gateway.store.entries import INSERT_CHANGE, INSERT_HISTORY
from gateway.store.errors import EntryNotFound, InvalidTransition
from gateway.store.rows import now_iso, to_json

FROM_ACTIVE: Final = frozenset({ACTIVE})
FROM_OBJECTION: Final = frozenset({OBJECTION_PENDING})
FROM_LIVE: Final = frozenset({ACTIVE, OBJECTION_PENDING})


class Move(NamedTuple):
    """One status change of an entry, whatever the store: the statuses it may leave, the
    one it reaches, and the note and details its history row and audit line record."""

    allowed_from: frozenset[str]
    wanted: EntryStatus
    note: str = ""
    details: dict[str, str] | None = None

    def check(self, entry: ListEntry) -> None:
        if entry.status not in self.allowed_from:
            raise InvalidTransition(entry.entry_id, entry.status, self.wanted, self.allowed_from)

    def audit(self, entry: ListEntry) -> tuple[dict[str, str], dict[str, str]]:
        """The audit line's ``before`` and ``after``."""
        before = {"uscc": entry.uscc, "list_type": entry.list_type, "status": entry.status}
        return before, {"status": self.wanted, "note": self.note, **(self.details or {})}


def objection(opened_on: date, note: str) -> Move:
    return Move(FROM_ACTIVE, "objection_pending", note, {"opened_on": opened_on.isoformat()})


def resolution(upheld: bool, note: str) -> Move:
    wanted: EntryStatus = "revoked" if upheld else "active"
    return Move(FROM_OBJECTION, wanted, note, {"upheld": "true" if upheld else "false"})


def repair(repaired_on: date, decision_no: str) -> Move:
    details = {"repaired_on": repaired_on.isoformat(), "decision_no": decision_no}
    return Move(FROM_LIVE, "repaired", "", details)


def revocation(note: str) -> Move:
    return Move(FROM_LIVE, "revoked", note)


async def transition(db: aiosqlite.Connection, entry_id: str, move: Move, actor: str) -> ListEntry:
    """Make ``move`` on one entry, with history, change and audit line."""
    entry = await entries.get(db, entry_id)
    if entry is None:
        raise EntryNotFound(entry_id)
    move.check(entry)
    now = now_iso()
    await db.execute(
        "UPDATE entries SET status = ?, updated_at = ? WHERE entry_id = ?",
        (move.wanted, now, entry_id),
    )
    await db.execute(
        INSERT_HISTORY,
        (entry_id, move.wanted, now, actor, move.note, to_json(move.details or {})),
    )
    await db.execute(INSERT_CHANGE, (entry.uscc, "entry", entry_id, now, actor))
    await audit.record(db, actor, f"entry.{move.wanted}", entry_id, *move.audit(entry))
    return msgspec.structs.replace(entry, status=move.wanted)


async def mark_expired(db: aiosqlite.Connection, today: date, actor: str, limit: int) -> int:
    """Up to ``limit`` active entries whose ``expires_on`` is before ``today`` become expired."""
    day = today.isoformat()
    due = list(
        await db.execute_fetchall(
            "SELECT entry_id, uscc, expires_on FROM entries "
            "WHERE status = 'active' AND expires_on IS NOT NULL AND expires_on < ? "
            "ORDER BY expires_on, entry_id LIMIT ?",
            (day, limit),
        )
    )
    if not due:
        return 0
    now = now_iso()
    await db.executemany(
        "UPDATE entries SET status = 'expired', updated_at = ? WHERE entry_id = ?",
        [(now, r[0]) for r in due],
    )
    await db.executemany(
        INSERT_HISTORY,
        [
            (r[0], "expired", now, actor, "expired", to_json({"expires_on": r[2], "today": day}))
            for r in due
        ],
    )
    await db.executemany(INSERT_CHANGE, [(r[1], "entry", r[0], now, actor) for r in due])
    return len(due)

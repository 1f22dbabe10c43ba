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
from typing import Final

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


async def transition(
    db: aiosqlite.Connection,
    entry_id: str,
    allowed_from: frozenset[str],
    wanted: EntryStatus,
    actor: str,
    note: str = "",
    details: dict[str, str] | None = None,
) -> ListEntry:
    """Move one entry from one of ``allowed_from`` to ``wanted``, with history and change."""
    entry = await entries.get(db, entry_id)
    if entry is None:
        raise EntryNotFound(entry_id)
    if entry.status not in allowed_from:
        raise InvalidTransition(entry_id, entry.status, wanted, allowed_from)
    now = now_iso()
    await db.execute(
        "UPDATE entries SET status = ?, updated_at = ? WHERE entry_id = ?", (wanted, now, entry_id)
    )
    await db.execute(INSERT_HISTORY, (entry_id, wanted, now, actor, note, to_json(details or {})))
    await db.execute(INSERT_CHANGE, (entry.uscc, "entry", entry_id, now, actor))
    before = {"uscc": entry.uscc, "list_type": entry.list_type, "status": entry.status}
    after = {"status": wanted, "note": note, **(details or {})}
    await audit.record(db, actor, f"entry.{wanted}", entry_id, before, after)
    return msgspec.structs.replace(entry, status=wanted)


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


async def open_objection(
    db: aiosqlite.Connection, entry_id: str, opened_on: date, note: str, actor: str
) -> ListEntry:
    details = {"opened_on": opened_on.isoformat()}
    return await transition(db, entry_id, FROM_ACTIVE, "objection_pending", actor, note, details)


async def resolve_objection(
    db: aiosqlite.Connection, entry_id: str, upheld: bool, note: str, actor: str
) -> ListEntry:
    wanted: EntryStatus = "revoked" if upheld else "active"
    details = {"upheld": "true" if upheld else "false"}
    return await transition(db, entry_id, FROM_OBJECTION, wanted, actor, note, details)


async def repair(
    db: aiosqlite.Connection, entry_id: str, repaired_on: date, decision_no: str, actor: str
) -> ListEntry:
    details = {"repaired_on": repaired_on.isoformat(), "decision_no": decision_no}
    return await transition(db, entry_id, FROM_LIVE, "repaired", actor, "", details)


async def revoke(db: aiosqlite.Connection, entry_id: str, note: str, actor: str) -> ListEntry:
    return await transition(db, entry_id, FROM_LIVE, "revoked", actor, note)

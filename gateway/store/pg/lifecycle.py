"""The status lifecycle of list entries on PostgreSQL: :mod:`gateway.store.lifecycle`
ported. The entry is read ``FOR UPDATE`` (after the log lock, which every write
transaction takes first), so the status checked cannot change before it is written."""

from __future__ import annotations

from datetime import date
from typing import Final

import asyncpg
import msgspec

from gateway.model import ListEntry
from gateway.store.errors import EntryNotFound
from gateway.store.lifecycle import Move
from gateway.store.pg import audit
from gateway.store.pg.rows import INSERT_CHANGES, INSERT_HISTORY, entry_from_record
from gateway.store.rows import ENTRY_COLUMNS, now_iso, to_json

_LOCK_ENTRY: Final = f"SELECT {ENTRY_COLUMNS} FROM entries WHERE entry_id = $1 FOR UPDATE"


async def transition(conn: asyncpg.Connection, entry_id: str, move: Move, actor: str) -> ListEntry:
    """Make ``move`` on one entry, with history, change and audit line."""
    row = await conn.fetchrow(_LOCK_ENTRY, entry_id)
    if row is None:
        raise EntryNotFound(entry_id)
    entry = entry_from_record(row)
    move.check(entry)
    now = now_iso()
    await conn.execute(
        "UPDATE entries SET status = $1, updated_at = $2 WHERE entry_id = $3",
        move.wanted,
        now,
        entry_id,
    )
    details = to_json(move.details or {})
    await conn.execute(
        INSERT_HISTORY, [entry_id], [move.wanted], [now], [actor], [move.note], [details]
    )
    await conn.execute(INSERT_CHANGES, [entry.uscc], [entry_id], "entry", now, actor)
    await audit.record(conn, actor, f"entry.{move.wanted}", entry_id, *move.audit(entry))
    return msgspec.structs.replace(entry, status=move.wanted)


async def mark_expired(conn: asyncpg.Connection, today: date, actor: str, limit: int) -> int:
    """Up to ``limit`` active entries whose ``expires_on`` is before ``today`` become expired."""
    due = await conn.fetch(
        "SELECT entry_id, uscc, expires_on FROM entries "
        "WHERE status = 'active' AND expires_on IS NOT NULL AND expires_on < $1 "
        "ORDER BY expires_on, entry_id LIMIT $2 FOR UPDATE",
        today,
        limit,
    )
    if not due:
        return 0
    now, day, count = now_iso(), today.isoformat(), len(due)
    ids = [r[0] for r in due]
    await conn.execute(
        "UPDATE entries SET status = 'expired', updated_at = $1 WHERE entry_id = ANY($2::text[])",
        now,
        ids,
    )
    await conn.execute(
        INSERT_HISTORY,
        ids,
        ["expired"] * count,
        [now] * count,
        [actor] * count,
        ["expired"] * count,
        [to_json({"expires_on": r[2].isoformat(), "today": day}) for r in due],
    )
    await conn.execute(INSERT_CHANGES, [r[1] for r in due], ids, "entry", now, actor)
    return count

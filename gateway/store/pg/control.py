"""Generation counters on PostgreSQL: :mod:`gateway.store.control`'s ``bump`` and
``generation`` (the synchronous ``bump_sync`` of the SIGHUP handler is not ported)."""

from __future__ import annotations

from typing import Final

import asyncpg

from gateway.store.pg import audit
from gateway.store.rows import now_iso

# ``control.generation``: unqualified, ``generation`` is ambiguous on PostgreSQL.
_BUMP: Final = (
    "INSERT INTO control (key, generation, value, changed_at, actor) VALUES ($1, 1, $2, $3, $4) "
    "ON CONFLICT (key) DO UPDATE SET generation = control.generation + 1, "
    "value = excluded.value, changed_at = excluded.changed_at, actor = excluded.actor "
    "RETURNING generation"
)


async def bump(
    conn: asyncpg.Connection, key: str, value: str, actor: str, audit_action: str = ""
) -> int:
    """Bump ``key``'s generation (from 0) with a value; the new generation. With an
    ``audit_action``, the audit log gets a line (the value before and after).

    Run in a write transaction holding the log lock, as every bump is: two bumps never
    interleave between reading the value before and writing the new one.
    """
    before = await conn.fetchval("SELECT value FROM control WHERE key = $1", key)
    generation = int(await conn.fetchval(_BUMP, key, value, now_iso(), actor))
    if audit_action:
        old = None if before is None else {"value": before, "generation": generation - 1}
        new = {"value": value, "generation": generation}
        await audit.record(conn, actor, audit_action, key, old, new)
    return generation


async def generation(conn: asyncpg.Connection, key: str) -> tuple[int, str]:
    """``key``'s generation and value; (0, "") when never bumped."""
    row = await conn.fetchrow("SELECT generation, value FROM control WHERE key = $1", key)
    return (int(row[0]), str(row[1])) if row is not None else (0, "")

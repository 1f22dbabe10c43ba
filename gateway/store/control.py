"""Signals every worker follows besides the lists (SQL): a generation counter per key.

A worker that is asked to do something all workers must do (reload the
catalog) bumps the key's generation; the others see the new generation on
their next look and do the same.
"""

from __future__ import annotations

import aiosqlite

from gateway.store.rows import now_iso


async def bump(db: aiosqlite.Connection, key: str, value: str, actor: str) -> int:
    """Bump ``key``'s generation (from 0) with a value; the new generation."""
    await db.execute(
        "INSERT INTO control (key, generation, value, changed_at, actor) VALUES (?, 1, ?, ?, ?) "
        "ON CONFLICT (key) DO UPDATE SET generation = generation + 1, value = excluded.value, "
        "changed_at = excluded.changed_at, actor = excluded.actor",
        (key, value, now_iso(), actor),
    )
    rows = list(await db.execute_fetchall("SELECT generation FROM control WHERE key = ?", (key,)))
    return int(rows[0][0])


async def generation(db: aiosqlite.Connection, key: str) -> tuple[int, str]:
    """``key``'s generation and value; (0, "") when never bumped."""
    rows = list(
        await db.execute_fetchall("SELECT generation, value FROM control WHERE key = ?", (key,))
    )
    return (int(rows[0][0]), str(rows[0][1])) if rows else (0, "")

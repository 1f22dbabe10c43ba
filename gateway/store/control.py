"""Signals every worker follows besides the lists (SQL): a generation counter per key.

A worker that is asked to do something all workers must do (reload the
catalog) bumps the key's generation; the others see the new generation on
their next look and do the same.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import aiosqlite

from gateway.settings import is_postgres_url
from gateway.store import audit
from gateway.store.rows import now_iso
from gateway.store.schema import begin_immediate

_BUMP = (
    "INSERT INTO control (key, generation, value, changed_at, actor) VALUES (?, 1, ?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET generation = generation + 1, value = excluded.value, "
    "changed_at = excluded.changed_at, actor = excluded.actor"
)


_VALUE = "SELECT value FROM control WHERE key = ?"


async def bump(
    db: aiosqlite.Connection, key: str, value: str, actor: str, audit_action: str = ""
) -> int:
    """Bump ``key``'s generation (from 0) with a value; the new generation. With an
    ``audit_action``, the audit log gets a line (the value before and after)."""
    before = list(await db.execute_fetchall(_VALUE, (key,)))
    await db.execute(_BUMP, (key, value, now_iso(), actor))
    rows = list(await db.execute_fetchall("SELECT generation FROM control WHERE key = ?", (key,)))
    generation = int(rows[0][0])
    if audit_action:
        await db.execute(
            audit.INSERT, _audit_params(actor, audit_action, key, before, value, generation)
        )
    return generation


def _audit_params(
    actor: str, action: str, key: str, before: list[Any], value: str, generation: int
) -> tuple[str, str, str, str, str | None, str | None]:
    old = {"value": before[0][0], "generation": generation - 1} if before else None
    return audit.params(actor, action, key, old, {"value": value, "generation": generation})


async def generation(db: aiosqlite.Connection, key: str) -> tuple[int, str]:
    """``key``'s generation and value; (0, "") when never bumped."""
    rows = list(
        await db.execute_fetchall("SELECT generation, value FROM control WHERE key = ?", (key,))
    )
    return (int(rows[0][0]), str(rows[0][1])) if rows else (0, "")


def bump_sync(path: str | Path, key: str, value: str, actor: str, audit_action: str = "") -> int:
    """:func:`bump` from synchronous code (the server's main process, on SIGHUP). ``path`` is
    ``GATEWAY_DB``: a SQLite file, or a PostgreSQL URL (then
    :func:`gateway.store.pg.control.bump_sync`, the same bump and audit line)."""
    if is_postgres_url(str(path)):
        # Imported here: asyncpg is not needed by a SQLite store, and gateway.store.pg
        # imports this package.
        from gateway.store.pg import control as pg_control

        return pg_control.bump_sync(str(path), key, value, actor, audit_action)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        begin_immediate(conn, 10_000)
        before = conn.execute(_VALUE, (key,)).fetchall()
        conn.execute(_BUMP, (key, value, now_iso(), actor))
        (generation,) = conn.execute(
            "SELECT generation FROM control WHERE key = ?", (key,)
        ).fetchone()
        if audit_action:
            conn.execute(
                audit.INSERT, _audit_params(actor, audit_action, key, before, value, generation)
            )
        conn.execute("COMMIT")
        return int(generation)
    finally:
        conn.close()

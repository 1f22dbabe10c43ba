"""Generation counters on PostgreSQL: :mod:`gateway.store.control`'s ``bump`` and
``generation``, and ``bump_sync``, the synchronous bump of the server's main process on
SIGHUP (which has no store open): one short-lived connection and one transaction, the log
lock first, as :meth:`~gateway.store.pg.PgStore.bump_control` does.
:func:`gateway.store.control.bump_sync` comes here when ``GATEWAY_DB`` is a URL."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Final

import asyncpg

from gateway.store.pg import audit
from gateway.store.pg.migrations import LOCK_NAMESPACE, LOG_LOCK
from gateway.store.rows import now_iso

#: How long ``bump_sync`` waits to connect, and then for the log lock (SQLite's waits
#: 10 s for the file's write lock): past it, the error is raised rather than hang SIGHUP.
SYNC_TIMEOUT_S: Final = 10

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


def bump_sync(dsn: str, key: str, value: str, actor: str, audit_action: str = "") -> int:
    """:func:`bump` from synchronous code, on a connection of its own to ``dsn``: the new
    generation. Runs an event loop of its own (in a thread of its own when the calling
    thread already runs one, which it then blocks, as SQLite's ``bump_sync`` does)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_bump_once(dsn, key, value, actor, audit_action))
    with ThreadPoolExecutor(1, thread_name_prefix="bump_sync") as pool:
        return pool.submit(bump_sync, dsn, key, value, actor, audit_action).result()


async def _bump_once(dsn: str, key: str, value: str, actor: str, audit_action: str) -> int:
    conn = await asyncpg.connect(dsn, timeout=SYNC_TIMEOUT_S)
    try:
        async with conn.transaction(isolation="read_committed"):
            await conn.execute(f"SET LOCAL lock_timeout = '{SYNC_TIMEOUT_S}s'")
            await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", LOCK_NAMESPACE, LOG_LOCK)
            return await bump(conn, key, value, actor, audit_action)
    finally:
        await conn.close()

"""Callers and their API keys on PostgreSQL: :mod:`gateway.store.callers` ported.

Every change of a key is written with its audit line and bumps the ``keys`` generation,
in one transaction (which holds the log lock from its start, as every write does).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

import asyncpg

from gateway.model import Caller
from gateway.store.callers import (
    KEY_COLUMNS,
    KEYS_CONTROL,
    KEYS_IN_FORCE,
    NEW_KEY_COLUMNS,
    KeyInForce,
    KeyLimits,
    in_force,
    insert_new_key,
    iso_instant,
    key_in_force,
    key_row,
    rotation,
)
from gateway.store.pg import audit, control
from gateway.store.pg.rows import command_count
from gateway.store.rows import now_iso

_FIND_CALLER: Final = "SELECT caller_id FROM callers WHERE name = $1 AND department = $2"
_INSERT_KEY: Final = (
    f"INSERT INTO api_keys ({NEW_KEY_COLUMNS}) VALUES ({', '.join(f'${n}' for n in range(1, 11))})"
)
_DESCRIBE: Final = (
    f"SELECT {KEY_COLUMNS} FROM api_keys AS k JOIN callers AS c USING (caller_id) "
    "WHERE k.key_id = $1"
)


async def _caller_id(conn: asyncpg.Connection, name: str, department: str, now: str) -> int:
    """The caller's id, inserted if new. Looked up first: ``INSERT ... ON CONFLICT DO
    NOTHING`` would draw an identity value even for a known caller (SQLite's rowid is not
    drawn), so the ids would skip."""
    found = await conn.fetchval(_FIND_CALLER, name, department)
    if found is None:
        found = await conn.fetchval(
            "INSERT INTO callers (name, department, created_at) VALUES ($1, $2, $3) "
            "ON CONFLICT (name, department) DO NOTHING RETURNING caller_id",
            name,
            department,
            now,
        )
    if found is None:  # inserted meanwhile (by a writer not holding the log lock)
        found = await conn.fetchval(_FIND_CALLER, name, department)
    return int(found)


async def _insert_key(
    conn: asyncpg.Connection,
    caller_id: int,
    scopes: frozenset[str],
    limits: KeyLimits,
    now: str,
    replaces: str | None = None,
) -> tuple[str, str]:
    async def insert(row: tuple[Any, ...]) -> None:
        async with conn.transaction():  # a savepoint: a failed statement aborts the rest
            await conn.execute(_INSERT_KEY, *row)

    return await insert_new_key(
        insert, asyncpg.UniqueViolationError, caller_id, scopes, limits, now, replaces
    )


async def _describe(conn: asyncpg.Connection, key_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(_DESCRIBE, key_id)
    return None if row is None else key_row(row)


async def _changed(
    conn: asyncpg.Connection,
    actor: str,
    action: str,
    key_id: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    await audit.record(conn, actor, action, key_id, before, after)
    await control.bump(conn, KEYS_CONTROL, key_id, actor)


async def _in_force(conn: asyncpg.Connection, key_id: str) -> dict[str, Any]:
    """The key, which must be neither revoked nor expired (locked until the commit)."""
    await conn.execute("SELECT 1 FROM api_keys WHERE key_id = $1 FOR UPDATE", key_id)
    return in_force(await _describe(conn, key_id), key_id)


async def create_key(
    conn: asyncpg.Connection,
    name: str,
    department: str,
    scopes: frozenset[str],
    limits: KeyLimits,
    actor: str,
) -> tuple[Caller, str]:
    """Insert (or reuse) the caller and a new key; the plaintext key is returned only here."""
    now = now_iso()
    caller_id = await _caller_id(conn, name, department, now)
    key_id, key = await _insert_key(conn, caller_id, scopes, limits, now)
    await _changed(conn, actor, "key.create", key_id, None, await _describe(conn, key_id))
    return Caller(caller_id, name, department, scopes, key_id), key


async def keys_in_force(conn: asyncpg.Connection) -> dict[str, KeyInForce]:
    """Every key not revoked (expired ones too: :class:`KeyInForce` says when), by id."""
    return {r[0]: key_in_force(r) for r in await conn.fetch(KEYS_IN_FORCE)}


async def revoke_key(conn: asyncpg.Connection, key_id: str, actor: str) -> bool:
    before = await _describe(conn, key_id)
    status = await conn.execute(
        "UPDATE api_keys SET revoked_at = $1 WHERE key_id = $2 AND revoked_at IS NULL",
        now_iso(),
        key_id,
    )
    if command_count(status) != 1:
        return False
    await _changed(conn, actor, "key.revoke", key_id, before, await _describe(conn, key_id))
    return True


async def rotate_key(
    conn: asyncpg.Connection, key_id: str, overlap: timedelta, actor: str
) -> tuple[Caller, str, dict[str, Any]]:
    """As :func:`gateway.store.callers.rotate_key`: a new key for the same caller, scopes
    and rate limit; the old one stays valid for ``overlap`` (or until its own expiry)."""
    old = await _in_force(conn, key_id)
    ends, limits = rotation(old, overlap)
    scopes = frozenset(old["scopes"])
    new_id, key = await _insert_key(
        conn, old["caller_id"], scopes, limits, now_iso(), replaces=key_id
    )
    await conn.execute("UPDATE api_keys SET expires_at = $1 WHERE key_id = $2", ends, key_id)
    after_old = await _describe(conn, key_id)
    assert after_old is not None
    await _changed(conn, actor, "key.rotate", key_id, old, after_old)
    await _changed(conn, actor, "key.create", new_id, None, await _describe(conn, new_id))
    caller = Caller(old["caller_id"], old["caller"], old["department"], scopes, new_id)
    return caller, key, after_old


async def set_limits(
    conn: asyncpg.Connection, key_id: str, limits: KeyLimits, actor: str
) -> dict[str, Any]:
    """Set the key's expiry and rate limit (None clears each); the key as it now stands."""
    before = await _in_force(conn, key_id)
    await conn.execute(
        "UPDATE api_keys SET expires_at = $1, rate_per_second = $2, burst = $3 WHERE key_id = $4",
        iso_instant(limits.expires_at),
        limits.rate_per_second,
        limits.burst,
        key_id,
    )
    after = await _describe(conn, key_id)
    assert after is not None
    await _changed(conn, actor, "key.limits", key_id, before, after)
    return after


async def list_keys(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT {KEY_COLUMNS} FROM api_keys AS k JOIN callers AS c USING (caller_id) "
        "ORDER BY k.created_at, k.key_id"
    )
    return [key_row(r) for r in rows]

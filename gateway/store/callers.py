"""Callers and their API keys (SQL). Run inside the store's transactions."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

import aiosqlite

from gateway.model import SCOPES, Caller
from gateway.store.keys import hash_key, new_key
from gateway.store.rows import now_iso


def normalize_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """The scopes as a set; ValueError naming any that is not in :data:`SCOPES`."""
    wanted = frozenset(s.strip() for s in scopes if s.strip())
    unknown = sorted(wanted - frozenset(SCOPES))
    if unknown:
        raise ValueError(
            f"unknown scope {', '.join(map(repr, unknown))}; valid scopes: {', '.join(SCOPES)}"
        )
    if not wanted:
        raise ValueError(f"a key needs at least one scope among: {', '.join(SCOPES)}")
    return wanted


def _scopes_text(scopes: frozenset[str]) -> str:
    return ",".join(sorted(scopes))


def _scopes_set(text: str) -> frozenset[str]:
    return frozenset(s for s in text.split(",") if s)


async def create_key(
    db: aiosqlite.Connection, name: str, department: str, scopes: frozenset[str]
) -> tuple[Caller, str]:
    """Insert (or reuse) the caller and a new key; the plaintext key is returned only here."""
    now = now_iso()
    await db.execute(
        "INSERT INTO callers (name, department, created_at) VALUES (?, ?, ?) "
        "ON CONFLICT (name, department) DO NOTHING",
        (name, department, now),
    )
    rows = list(
        await db.execute_fetchall(
            "SELECT caller_id FROM callers WHERE name = ? AND department = ?", (name, department)
        )
    )
    caller_id = int(rows[0][0])
    for attempt in range(5):
        key_id, key = new_key()
        try:
            await db.execute(
                "INSERT INTO api_keys (key_id, caller_id, key_hash, scopes, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (key_id, caller_id, hash_key(key), _scopes_text(scopes), now),
            )
        except sqlite3.IntegrityError:  # a key id collision: 62**8 ids, but be sure
            if attempt == 4:
                raise
            continue
        return Caller(caller_id, name, department, scopes, key_id), key
    raise AssertionError("unreachable")  # pragma: no cover


async def keys_by_hash(db: aiosqlite.Connection) -> dict[str, Caller]:
    rows = await db.execute_fetchall(
        "SELECT k.key_hash, c.caller_id, c.name, c.department, k.scopes, k.key_id "
        "FROM api_keys AS k JOIN callers AS c USING (caller_id) WHERE k.revoked_at IS NULL"
    )
    return {r[0]: Caller(r[1], r[2], r[3], _scopes_set(r[4]), r[5]) for r in rows}


async def revoke_key(db: aiosqlite.Connection, key_id: str) -> bool:
    cursor = await db.execute(
        "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
        (now_iso(), key_id),
    )
    return cursor.rowcount == 1


async def list_keys(db: aiosqlite.Connection) -> list[dict[str, Any]]:
    rows = await db.execute_fetchall(
        "SELECT k.key_id, c.caller_id, c.name, c.department, k.scopes, k.created_at, "
        "k.revoked_at FROM api_keys AS k JOIN callers AS c USING (caller_id) "
        "ORDER BY k.created_at, k.key_id"
    )
    return [
        {
            "key_id": r[0],
            "caller_id": r[1],
            "caller": r[2],
            "department": r[3],
            "scopes": sorted(_scopes_set(r[4])),
            "created_at": r[5],
            "revoked_at": r[6],
        }
        for r in rows
    ]

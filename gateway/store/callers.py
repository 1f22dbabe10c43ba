"""Callers and their API keys (SQL). Run inside the store's transactions.

Every change of a key is written with its audit line and bumps the ``keys``
generation (``control``), in one transaction: workers reload their keys when the
generation moves, so a revocation is in force everywhere within their poll interval.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

import aiosqlite
import msgspec

from gateway.model import SCOPES, Caller
from gateway.store import audit, control
from gateway.store.errors import StoreError
from gateway.store.keys import key_digest, new_key, new_salt
from gateway.store.rows import now_iso

#: The ``control`` key whose generation moves at every change of a key.
KEYS_CONTROL: Final = "keys"


class KeyNotFound(StoreError):
    """No key in force has this id (never created, revoked or expired)."""


class KeyInForce(msgspec.Struct, frozen=True, gc=False):
    """What a worker needs to authenticate a key: never the key itself."""

    key_id: str
    salt: str
    digest: str
    caller: Caller
    #: POSIX seconds after which the key is refused; None: no end.
    expires_at: float | None = None
    rate_per_second: float | None = None
    burst: int | None = None


class KeyLimits(msgspec.Struct, frozen=True):
    """Per-key settings given at creation or changed later (None: the default)."""

    expires_at: datetime | None = None
    rate_per_second: float | None = None
    burst: int | None = None


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


def scopes_text(scopes: frozenset[str]) -> str:
    return ",".join(sorted(scopes))


def scopes_set(text: str) -> frozenset[str]:
    return frozenset(s for s in text.split(",") if s)


async def _caller_id(db: aiosqlite.Connection, name: str, department: str, now: str) -> int:
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
    return int(rows[0][0])


def iso_instant(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone().isoformat(timespec="milliseconds")


#: api_keys's columns as a new key is inserted (both backends).
NEW_KEY_COLUMNS: Final = (
    "key_id, caller_id, key_hash, salt, scopes, created_at, expires_at, rate_per_second, "
    "burst, replaces"
)


async def insert_new_key(
    insert: Callable[[tuple[Any, ...]], Awaitable[object]],
    collision: type[Exception],
    caller_id: int,
    scopes: frozenset[str],
    limits: KeyLimits,
    now: str,
    replaces: str | None = None,
) -> tuple[str, str]:
    """Draw a key, and ``insert`` its row (the values of :data:`NEW_KEY_COLUMNS`), drawing
    again if its id collides (``collision``: 62**8 ids, but be sure); (key id, key)."""
    for attempt in range(5):
        key_id, key = new_key()
        salt = new_salt()
        row = (
            key_id,
            caller_id,
            key_digest(key, salt),
            salt,
            scopes_text(scopes),
            now,
            iso_instant(limits.expires_at),
            limits.rate_per_second,
            limits.burst,
            replaces,
        )
        try:
            await insert(row)
        except collision:
            if attempt == 4:
                raise
            continue
        return key_id, key
    raise AssertionError("unreachable")  # pragma: no cover


async def _insert_key(
    db: aiosqlite.Connection,
    caller_id: int,
    scopes: frozenset[str],
    limits: KeyLimits,
    now: str,
    replaces: str | None = None,
) -> tuple[str, str]:
    sql = f"INSERT INTO api_keys ({NEW_KEY_COLUMNS}) VALUES ({', '.join('?' * 10)})"
    return await insert_new_key(
        lambda row: db.execute(sql, row),
        sqlite3.IntegrityError,
        caller_id,
        scopes,
        limits,
        now,
        replaces,
    )


async def create_key(
    db: aiosqlite.Connection,
    name: str,
    department: str,
    scopes: frozenset[str],
    limits: KeyLimits,
    actor: str,
) -> tuple[Caller, str]:
    """Insert (or reuse) the caller and a new key; the plaintext key is returned only here."""
    now = now_iso()
    caller_id = await _caller_id(db, name, department, now)
    key_id, key = await _insert_key(db, caller_id, scopes, limits, now)
    await _changed(db, actor, "key.create", key_id, None, await _describe(db, key_id))
    return Caller(caller_id, name, department, scopes, key_id), key


KEY_COLUMNS: Final = (
    "k.key_id, c.caller_id, c.name, c.department, k.scopes, k.created_at, k.revoked_at, "
    "k.expires_at, k.rate_per_second, k.burst, k.replaces"
)


def key_row(r: Any) -> dict[str, Any]:
    return {
        "key_id": r[0],
        "caller_id": r[1],
        "caller": r[2],
        "department": r[3],
        "scopes": sorted(scopes_set(r[4])),
        "created_at": r[5],
        "revoked_at": r[6],
        "expires_at": r[7],
        "rate_per_second": r[8],
        "burst": r[9],
        "replaces": r[10],
    }


async def _describe(db: aiosqlite.Connection, key_id: str) -> dict[str, Any] | None:
    rows = list(
        await db.execute_fetchall(
            f"SELECT {KEY_COLUMNS} FROM api_keys AS k JOIN callers AS c USING (caller_id) "
            "WHERE k.key_id = ?",
            (key_id,),
        )
    )
    return key_row(rows[0]) if rows else None


async def _changed(
    db: aiosqlite.Connection,
    actor: str,
    action: str,
    key_id: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    await audit.record(db, actor, action, key_id, before, after)
    await control.bump(db, KEYS_CONTROL, key_id, actor)


def in_force(found: dict[str, Any] | None, key_id: str) -> dict[str, Any]:
    """``found`` (:func:`key_row`), which must be a key neither revoked nor expired."""
    if found is None or found["revoked_at"] is not None:
        raise KeyNotFound(f"no key in force has the id {key_id!r}")
    expires = found["expires_at"]
    if expires is not None and datetime.fromisoformat(expires) <= datetime.now().astimezone():
        raise KeyNotFound(f"the key {key_id!r} expired at {expires}")
    return found


def rotation(old: dict[str, Any], overlap: timedelta) -> tuple[str | None, KeyLimits]:
    """When the rotated key ``old`` ends (``overlap`` from now, or its own expiry if
    sooner), and the limits its successor takes over (not its expiry)."""
    ends = datetime.now().astimezone() + overlap
    if old["expires_at"] is not None:
        ends = min(ends, datetime.fromisoformat(old["expires_at"]))
    return iso_instant(ends), KeyLimits(None, old["rate_per_second"], old["burst"])


async def _in_force(db: aiosqlite.Connection, key_id: str) -> dict[str, Any]:
    return in_force(await _describe(db, key_id), key_id)


#: The keys not revoked, as :func:`key_in_force` reads them (the same SQL on both backends).
KEYS_IN_FORCE: Final = (
    "SELECT k.key_id, k.salt, k.key_hash, c.caller_id, c.name, c.department, k.scopes, "
    "k.expires_at, k.rate_per_second, k.burst "
    "FROM api_keys AS k JOIN callers AS c USING (caller_id) WHERE k.revoked_at IS NULL"
)


def key_in_force(r: Sequence[Any]) -> KeyInForce:
    """A row of :data:`KEYS_IN_FORCE`."""
    expires = None if r[7] is None else datetime.fromisoformat(r[7]).timestamp()
    return KeyInForce(
        r[0], r[1], r[2], Caller(r[3], r[4], r[5], scopes_set(r[6]), r[0]), expires, r[8], r[9]
    )


async def keys_in_force(db: aiosqlite.Connection) -> dict[str, KeyInForce]:
    """Every key not revoked (expired ones too: :class:`KeyInForce` says when), by id."""
    return {r[0]: key_in_force(r) for r in await db.execute_fetchall(KEYS_IN_FORCE)}


async def revoke_key(db: aiosqlite.Connection, key_id: str, actor: str) -> bool:
    before = await _describe(db, key_id)
    cursor = await db.execute(
        "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
        (now_iso(), key_id),
    )
    if cursor.rowcount != 1:
        return False
    await _changed(db, actor, "key.revoke", key_id, before, await _describe(db, key_id))
    return True


async def rotate_key(
    db: aiosqlite.Connection, key_id: str, overlap: timedelta, actor: str
) -> tuple[Caller, str, dict[str, Any]]:
    """A new key for the same caller, scopes and rate limit; the old one stays valid for
    ``overlap`` (or until its own expiry, if sooner). Returns the new caller view, the
    new plaintext key and the old key as it now stands."""
    old = await _in_force(db, key_id)
    ends, limits = rotation(old, overlap)
    scopes = frozenset(old["scopes"])
    new_id, key = await _insert_key(
        db, old["caller_id"], scopes, limits, now_iso(), replaces=key_id
    )
    await db.execute("UPDATE api_keys SET expires_at = ? WHERE key_id = ?", (ends, key_id))
    after_old = await _describe(db, key_id)
    assert after_old is not None
    await _changed(db, actor, "key.rotate", key_id, old, after_old)
    await _changed(db, actor, "key.create", new_id, None, await _describe(db, new_id))
    caller = Caller(old["caller_id"], old["caller"], old["department"], scopes, new_id)
    return caller, key, after_old


async def set_limits(
    db: aiosqlite.Connection, key_id: str, limits: KeyLimits, actor: str
) -> dict[str, Any]:
    """Set the key's expiry and rate limit (None clears each); the key as it now stands."""
    before = await _in_force(db, key_id)
    await db.execute(
        "UPDATE api_keys SET expires_at = ?, rate_per_second = ?, burst = ? WHERE key_id = ?",
        (iso_instant(limits.expires_at), limits.rate_per_second, limits.burst, key_id),
    )
    after = await _describe(db, key_id)
    assert after is not None
    await _changed(db, actor, "key.limits", key_id, before, after)
    return after


async def list_keys(db: aiosqlite.Connection) -> list[dict[str, Any]]:
    rows = await db.execute_fetchall(
        f"SELECT {KEY_COLUMNS} FROM api_keys AS k JOIN callers AS c USING (caller_id) "
        "ORDER BY k.created_at, k.key_id"
    )
    return [key_row(r) for r in rows]

"""Callers and API keys: created once, stored as salted HMACs, found by id, revoked. On
both backends (``open_store``)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from gateway.model import Caller
from gateway.store import KeyInForce, Store, key_digest, key_id_of, matches, new_key
from gateway.store.keys import new_salt
from tests.store.helpers import AnyStore, OpenStore, fetch, run

KEY_FORMAT = re.compile(r"gw_([A-Za-z0-9]{8})_([A-Za-z0-9_-]{43})")


def verified(keys: dict[str, KeyInForce], key: str) -> Caller | None:
    """The caller of ``key`` among the keys in force, as a worker finds it."""
    found = keys.get(key_id_of(key) or "")
    return found.caller if found and matches(key, found.salt, found.digest) else None


def test_a_key_looks_like_gw_keyid_secret_and_is_kept_as_a_salted_hmac() -> None:
    key_id, key = new_key()
    match = KEY_FORMAT.fullmatch(key)
    assert match is not None
    assert match.group(1) == key_id
    assert key_id_of(key) == key_id
    salt, other_salt = new_salt(), new_salt()
    assert len(salt) == 32
    assert salt != other_salt
    assert key_digest(key, salt) == key_digest(key, salt)
    assert len(key_digest(key, salt)) == 64
    assert key_digest(key, salt) != key_digest(key, other_salt)  # the same key, unlinkable
    assert key_digest(key, salt) != key_digest(key + "x", salt)
    assert matches(key, salt, key_digest(key, salt))
    assert not matches(key + "x", salt, key_digest(key, salt))
    # RFC 4231 test case 2: HMAC-SHA256(key="Jefe", "what do ya want for nothing?")
    assert key_digest("what do ya want for nothing?", b"Jefe".hex()) == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )
    # A key stored before salts (empty salt) is a plain SHA-256, still verified.
    assert key_digest("abc", "") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    assert new_key()[1] != new_key()[1]
    for bad in ("", "gw_", "gw_short_x", "xx_abcdefgh_secret", "gw_abc-efgh_secret"):
        assert key_id_of(bad) is None


async def everything_stored(store: AnyStore) -> list[bytes]:
    """What the database holds: SQLite's files (the database, its WAL and shared memory), or
    every row of every table of PostgreSQL's schema as text (its files are the server's)."""
    if isinstance(store, Store):
        return [p.read_bytes() for p in store.path.parent.glob(f"{store.path.name}*")]
    tables = await fetch(
        store,
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = current_schema() ORDER BY 1",
    )
    return [
        str(await fetch(store, f"SELECT t::text FROM {name} AS t")).encode() for (name,) in tables
    ]


def test_create_key_returns_the_key_once_and_stores_only_its_hash(open_store: OpenStore) -> None:
    async def scenario() -> tuple[Caller, str, dict[str, KeyInForce], Any, list[bytes]]:
        async with await open_store() as store:
            caller, key = await store.create_key(
                "省政务服务网审批系统", "省政务服务中心", ["check", "feedback"]
            )
            in_force = await store.keys_in_force()
            hashes = await fetch(store, "SELECT key_hash, salt FROM api_keys")
        return caller, key, in_force, hashes, await everything_stored(store)  # once closed

    caller, key, in_force, hashes, files = run(scenario())
    assert KEY_FORMAT.fullmatch(key)
    assert caller.name == "省政务服务网审批系统"
    assert caller.department == "省政务服务中心"
    assert caller.scopes == frozenset({"check", "feedback"})
    assert verified(in_force, key) == caller
    assert list(in_force) == [key_id_of(key)]
    stored = in_force[caller.key_id]

    # The plaintext key (and its secret part) appears in none of the database's files.
    secret = key[len("gw_") + 8 + 1 :]
    assert files
    for data in files:
        assert key.encode() not in data
        assert secret.encode() not in data
    assert hashes == [(stored.digest, stored.salt)]
    assert stored.digest == key_digest(key, stored.salt)


def test_a_caller_is_reused_and_each_key_has_its_own_scopes(open_store: OpenStore) -> None:
    async def scenario() -> None:
        async with await open_store() as store:
            first, key1 = await store.create_key("采购平台", "财政厅", ["check"])
            second, key2 = await store.create_key(" 采购平台 ", "财政厅", ["reports", "check"])
            other, _ = await store.create_key("采购平台", "住建厅", ["check"])
            assert first.caller_id == second.caller_id != other.caller_id
            assert first.key_id != second.key_id
            keys = await store.keys_in_force()
            assert (c := verified(keys, key1))
            assert c.scopes == {"check"}
            assert (c := verified(keys, key2))
            assert c.scopes == {"check", "reports"}
            assert len(keys) == 3

    run(scenario())


def test_scopes_are_validated(open_store: OpenStore) -> None:
    async def scenario() -> None:
        async with await open_store() as store:
            with pytest.raises(ValueError, match="unknown scope 'delete'"):
                await store.create_key("a", "b", ["check", "delete"])
            with pytest.raises(ValueError, match="at least one scope"):
                await store.create_key("a", "b", [])
            with pytest.raises(ValueError, match="must not be empty"):
                await store.create_key("", "b", ["check"])
            assert await store.list_keys() == []  # nothing half-created

    run(scenario())


def test_revoked_keys_no_longer_authenticate_and_listing_shows_no_hash(
    open_store: OpenStore,
) -> None:
    async def scenario() -> None:
        async with await open_store() as store:
            caller, key = await store.create_key("审批系统", "政务中心", ["check"])
            _, other = await store.create_key("审批系统", "政务中心", ["admin"])
            assert await store.revoke_key(caller.key_id) is True
            assert await store.revoke_key(caller.key_id) is False  # already revoked
            assert await store.revoke_key("nosuchid") is False
            keys = await store.keys_in_force()
            assert verified(keys, key) is None
            assert verified(keys, other) is not None
            digests = {k.digest for k in keys.values()}

            listing = await store.list_keys()
            assert [k["key_id"] for k in listing if k["revoked_at"]] == [caller.key_id]
            for row in listing:
                assert set(row) == {
                    "key_id",
                    "caller_id",
                    "caller",
                    "department",
                    "scopes",
                    "created_at",
                    "revoked_at",
                    "expires_at",
                    "rate_per_second",
                    "burst",
                    "replaces",
                }
                assert not digests & {str(v) for v in row.values()}
            assert listing[0]["caller"] == "审批系统"
            assert listing[0]["scopes"] == ["check"]

    run(scenario())

"""PgStore against Store: what the other store tests do not cover yet (key rotation and
limits, the audit log's query, control generations, change_at) on both backends; the
same scenario run on both giving the same results, audit lines, histories and change log;
and, on PostgreSQL only, the log lock taken first by every write (no deadlock with a row
lock, seq order is commit order under concurrent writers)."""

from __future__ import annotations

import asyncio
import re
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest

from gateway.model import Grade
from gateway.store import KeyLimits, KeyNotFound, Store
from gateway.store.callers import KEYS_CONTROL
from gateway.store.pg import PgStore
from gateway.store.pg.migrations import LOCK_NAMESPACE, LOG_LOCK
from tests.store.helpers import TODAY, AnyStore, OpenStore, entry, fetch, run, uscc


def test_rotation_and_limits_of_keys(open_store: OpenStore) -> None:
    async def scenario() -> None:
        async with await open_store() as store:
            ends = datetime.now().astimezone() + timedelta(days=30)
            caller, _ = await store.create_key(
                "审批系统", "政务中心", ["check"], KeyLimits(ends, 5.0, 10), "admin"
            )
            assert await store.control_generation(KEYS_CONTROL) == (1, caller.key_id)
            found = (await store.keys_in_force())[caller.key_id]
            assert (found.rate_per_second, found.burst) == (5.0, 10)
            assert found.expires_at == pytest.approx(ends.timestamp(), abs=0.001)

            row = await store.set_key_limits(caller.key_id, KeyLimits(None, 2.5, None), "admin")
            assert (row["expires_at"], row["rate_per_second"], row["burst"]) == (None, 2.5, None)
            assert (await store.keys_in_force())[caller.key_id].expires_at is None

            new, key, old = await store.rotate_key(caller.key_id, timedelta(hours=1), "admin")
            assert new.key_id != caller.key_id
            assert (new.caller_id, new.name, new.scopes) == (
                caller.caller_id,
                "审批系统",
                frozenset({"check"}),
            )
            assert old["key_id"] == caller.key_id
            old_ends = datetime.fromisoformat(old["expires_at"])
            assert (
                timedelta(minutes=59) < old_ends - datetime.now().astimezone() <= timedelta(hours=1)
            )
            keys = await store.keys_in_force()
            assert set(keys) == {caller.key_id, new.key_id}
            assert (keys[new.key_id].rate_per_second, keys[new.key_id].burst) == (2.5, None)
            listing = {k["key_id"]: k for k in await store.list_keys()}
            assert listing[new.key_id]["replaces"] == caller.key_id
            assert key.startswith(f"gw_{new.key_id}_")
            # create, limits, rotate (the old key, then the new one)
            assert await store.control_generation(KEYS_CONTROL) == (4, new.key_id)

            assert await store.revoke_key(caller.key_id, "admin") is True
            for act in (
                lambda: store.rotate_key(caller.key_id, timedelta(hours=1)),
                lambda: store.set_key_limits(caller.key_id, KeyLimits()),
                lambda: store.rotate_key("nosuchid", timedelta(hours=1)),
            ):
                with pytest.raises(KeyNotFound, match="no key in force"):
                    await act()
            await store.set_key_limits(
                new.key_id, KeyLimits(datetime.now().astimezone() + timedelta(seconds=0.2))
            )
            await asyncio.sleep(0.3)
            with pytest.raises(KeyNotFound, match="expired at"):
                await store.rotate_key(new.key_id, timedelta(hours=1))
            assert await store.control_generation(KEYS_CONTROL) == (6, new.key_id)
            assert len(await store.list_keys()) == 2  # a refused rotation inserted nothing

    run(scenario())


def test_the_audit_log_is_queried_by_action_actor_target_time_and_id(
    open_store: OpenStore,
) -> None:
    async def scenario() -> None:
        async with await open_store() as store:
            assert await store.audit() == []
            caller, _ = await store.create_key("审批系统", "政务中心", ["check"], actor="alice")
            (entry_id,) = (await store.upsert_entries([entry(1)], "import")).entry_ids
            await store.revoke(entry_id, "撤销", "bob")
            await store.put_grade(uscc(2), Grade("good", "zj", date(2026, 10, 1)), "carol")
            await store.bump_control("catalog", "2026.11.1", "dave", "catalog.reload")

            lines = await store.audit()
            assert [(a["id"], a["actor"], a["action"]) for a in lines] == [
                (1, "alice", "key.create"),
                (2, "import", "entries.upsert"),
                (3, "bob", "entry.revoked"),
                (4, "carol", "grades.put"),
                (5, "dave", "catalog.reload"),
            ]
            assert lines[0]["target"] == caller.key_id
            assert lines[0]["before"] is None
            assert lines[1]["after"] == {"inserted": 1, "updated": 0, "unchanged": 0}
            assert lines[2]["before"] == {
                "uscc": uscc(1),
                "list_type": "court_defaulter",
                "status": "active",
            }
            assert lines[2]["after"] == {"status": "revoked", "note": "撤销"}
            assert lines[3]["target"] == uscc(2)
            assert lines[3]["after"]["grade"] == {
                "value": "good",
                "source": "zj",
                "as_of": "2026-10-01",
            }
            assert lines[4]["before"] is None
            assert lines[4]["after"] == {"value": "2026.11.1", "generation": 1}

            assert [a["id"] for a in await store.audit(action="entry.revoked")] == [3]
            assert [a["id"] for a in await store.audit(actor="carol")] == [4]
            assert [a["id"] for a in await store.audit(target=entry_id)] == [3]
            assert [a["id"] for a in await store.audit(after_id=2, limit=2)] == [3, 4]
            third = lines[2]["at"]  # compared as text, as written
            since = [a["id"] for a in await store.audit(since=third)]
            until = [a["id"] for a in await store.audit(until=third)]
            assert since == [a["id"] for a in lines if a["at"] >= third]
            assert until == [a["id"] for a in lines if a["at"] < third]
            assert 3 in since
            assert 3 not in until
            assert await store.audit(action="key.create", actor="bob") == []

    run(scenario())


def test_control_generations_and_change_at(open_store: OpenStore) -> None:
    async def scenario() -> None:
        async with await open_store() as store:
            assert await store.control_generation("catalog") == (0, "")
            assert await store.bump_control("catalog", "v1", "a") == 1
            assert await store.bump_control("catalog", "v2", "b", "catalog.reload") == 2
            assert await store.bump_control("other", "x", "c") == 1
            assert await store.control_generation("catalog") == (2, "v2")
            (line,) = await store.audit()
            assert line["before"] == {"value": "v1", "generation": 1}
            assert line["after"] == {"value": "v2", "generation": 2}
            assert await fetch(store, "SELECT actor FROM control ORDER BY key") == [("b",), ("c",)]

            assert await store.change_at(1) == ""
            assert await store.last_change_seq() == 0
            (entry_id,) = (await store.upsert_entries([entry(1)], "import")).entry_ids
            at, kind, ref = (await store.change_at(1)).split(" ")
            assert (kind, ref) == ("entry", entry_id)
            assert datetime.fromisoformat(at).tzinfo is not None
            assert await store.change_at(2) == ""

    run(scenario())


# --- the same scenario on both ----------------------------------------------------------

_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d")
_ENTRY_ID = re.compile(r"\b[0-9a-f]{12}7[0-9a-f]{19}\b")


async def transcript(store: AnyStore) -> str:
    """Every answer of a scenario touching each ported method, then the audit log, the
    entries' histories and the change log, as JSON with what differs by nature between two
    runs (the time, random entry and key ids) replaced by placeholders."""
    said: list[Any] = []
    rows = [entry(n, source_id=f"{n}", listed_on=date(2026, 1, n + 1)) for n in range(6)]
    rows += [entry(1, source_id="1", reason="更正"), entry(7, source="manual", source_id="")]
    first = await store.upsert_entries(rows, "import")
    ids = first.entry_ids
    said.append(first)
    moved = entry(2, source_id="2", listed_on=date(2026, 1, 3), uscc=uscc(9))
    said.append(await store.upsert_entries([*rows[:3], moved], "import"))  # 1 updated, 1 moved
    said.append(await store.open_objection(ids[0], date(2026, 11, 1), "异议", "clerk"))
    said.append(await store.resolve_objection(ids[0], False, "不成立", "reviewer"))
    said.append(await store.open_objection(ids[3], date(2026, 11, 2), "异议", "clerk"))
    said.append(await store.resolve_objection(ids[3], True, "成立", "reviewer"))
    said.append(await store.repair(ids[4], date(2026, 11, 5), "修复1号", "clerk"))
    said.append(await store.revoke(ids[5], "撤销", "clerk"))
    await store.upsert_entries([entry(8, expires_on=date(2026, 11, 1))], "import")
    said.append(await store.mark_expired(TODAY, "expiry", batch=1))
    said.append(await store.put_grades([(uscc(1), Grade("good")), (uscc(8), Grade("poor"))], "g"))
    said.append(await store.put_grade(uscc(1), Grade("fair", "zj", date(2026, 9, 1)), "g"))
    caller, _ = await store.create_key("系统", "部门", ["check", "lists"], KeyLimits(None, 3.0, 6))
    said.append(caller)
    said.append(await store.set_key_limits(caller.key_id, KeyLimits(None, None, 2), "admin"))
    rotated, _, old = await store.rotate_key(caller.key_id, timedelta(minutes=5), "admin")
    said += [rotated, old, await store.revoke_key(rotated.key_id, "admin")]
    said.append(await store.bump_control("catalog", "v1", "ops", "catalog.reload"))
    said.append(await store.control_generation(KEYS_CONTROL))
    said.append(sorted(await store.list_keys(), key=lambda k: k["replaces"] or ""))
    said.append(
        sorted(
            (k, v.caller, v.rate_per_second, v.burst)
            for k, v in (await store.keys_in_force()).items()
        )
    )
    said.append([await store.get_entry(i) for i in ids])
    said.append([await store.subject_entries(uscc(n)) for n in (1, 2, 9)])
    said.append([await store.get_grade(uscc(n)) for n in (1, 2, 8)])
    said.append(await store.subjects([uscc(n) for n in range(10)]))
    said.append([c async for c in store.live_rows(chunk=3)])
    said.append(await store.changes_since(0))
    said.append([await store.change_at(s) for s in (1, 12, 99)])
    said.append(await store.audit(limit=1000))
    said.append([await store.entry_history(i) for i in ids])
    keys = [caller.key_id, rotated.key_id]
    text = msgspec.json.encode(said, order="deterministic").decode()
    text = _TIME.sub("<time>", text)
    for n, key_id in enumerate(keys):
        text = text.replace(key_id, f"<key {n}>")
    seen: dict[str, str] = {}
    return _ENTRY_ID.sub(lambda m: seen.setdefault(m[0], f"<entry {len(seen)}>"), text)


def test_the_same_scenario_gives_the_same_answers_on_both(
    tmp_path: Path, postgres_url: str
) -> None:
    async def scenario() -> tuple[str, str]:
        async with await Store.open(tmp_path / "gateway.db") as sqlite:
            on_sqlite = await transcript(sqlite)
        async with await PgStore.open(postgres_url) as postgres:
            on_postgres = await transcript(postgres)
        return on_sqlite, on_postgres

    on_sqlite, on_postgres = run(scenario())
    assert "<entry 6>" in on_sqlite  # the seven entries of the first import, all named
    assert "<entry 7>" not in on_sqlite
    assert "<key 1>" in on_sqlite
    assert on_postgres == on_sqlite


# --- PostgreSQL only: the log lock ------------------------------------------------------


def test_a_write_takes_the_log_lock_before_any_row_lock(postgres_url: str) -> None:
    """A transaction holding the log lock, then locking an entry's row, does not deadlock
    with the store's transition of that entry: the store waits for the log lock before it
    touches the row. (Were the row taken first, one of the two would be a deadlock victim.)"""

    async def scenario() -> None:
        async with await PgStore.open(postgres_url) as store:
            (entry_id,) = (await store.upsert_entries([entry(1)], "import")).entry_ids
            other = await asyncpg.connect(postgres_url)
            try:
                async with other.transaction():
                    await other.execute(
                        "SELECT pg_advisory_xact_lock($1, $2)", LOCK_NAMESPACE, LOG_LOCK
                    )
                    revoking = asyncio.ensure_future(store.revoke(entry_id, "撤销", "clerk"))
                    await asyncio.sleep(0.3)
                    assert not revoking.done()  # waiting for the log lock
                    await other.execute("SET LOCAL lock_timeout = '2s'")
                    await other.execute(
                        "UPDATE entries SET updated_at = updated_at WHERE entry_id = $1", entry_id
                    )  # the row is free: the store has not touched it
                    await other.execute(
                        "INSERT INTO changes (uscc, kind, ref, at, actor) "
                        "VALUES ('X', 'entry', 'other', 't', 'other')"
                    )
                assert (await revoking).status == "revoked"
            finally:
                await other.close()
            # The other transaction committed first: its change comes first.
            assert await fetch(store, "SELECT ref FROM changes ORDER BY seq") == [
                (entry_id,),
                ("other",),
                (entry_id,),
            ]

    run(scenario())


def test_concurrent_writers_all_succeed_with_seqs_in_commit_order(postgres_url: str) -> None:
    """Writers on several pool connections at once (imports of overlapping keys, status
    changes, grades, keys): none fails or deadlocks, nothing is lost, and the change log's
    seqs are unique and increasing in commit order (a reader polling meanwhile never sees a
    seq appear below one it has seen). Gaps are allowed on PostgreSQL (docs/postgresql.md)."""

    async def scenario() -> None:
        async with await PgStore.open(postgres_url, max_size=6) as store:
            ids = (await store.upsert_entries([entry(n) for n in range(20)], "seed")).entry_ids
            seen: list[int] = []
            stop = asyncio.Event()

            async def follow() -> None:
                mark = 0
                while not stop.is_set():
                    for seq, _ in await store.changes_since(mark):
                        seen.append(seq)
                        mark = seq
                    await asyncio.sleep(0)

            async def importer(w: int) -> None:
                for b in range(5):
                    rows = [entry(n, reason=f"w{w}b{b}") for n in range(w, 20, 2)]
                    await store.upsert_entries(rows, f"import{w}")

            async def clerk(w: int) -> None:
                for n in range(w, 20, 4):
                    await store.repair(ids[n], date(2026, 11, 5), f"修复{n}", f"clerk{w}")

            async def grader(w: int) -> None:
                for n in range(10):
                    await store.put_grade(uscc(n), Grade("good" if (n + w) % 2 else "fair"), "g")

            async def admin(w: int) -> None:
                for _ in range(3):
                    await store.create_key(f"系统{w}", "部门", ["check"], actor=f"admin{w}")

            follower = asyncio.ensure_future(follow())
            await asyncio.gather(
                *(importer(w) for w in range(2)),
                *(clerk(w) for w in range(4)),
                *(grader(w) for w in range(2)),
                *(admin(w) for w in range(2)),
            )
            stop.set()
            await follower
            seqs = [s for (s,) in await fetch(store, "SELECT seq FROM changes ORDER BY seq")]
            assert seen
            assert seen == [s for s in seqs if s <= (seen[-1] if seen else 0)]
            assert len(seqs) == len(set(seqs))
            assert all(e.status == "repaired" for e in [await store.get_entry(i) for i in ids])
            assert len(await store.list_keys()) == 6
            generation, _ = await store.control_generation(KEYS_CONTROL)
            assert generation == 6

    run(scenario())

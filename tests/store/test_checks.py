"""Recording checks and feedback in batches, and reading them back from the store, on both
backends: SQLite's CheckWriter and PostgreSQL's write_batch keep the same contract (which
feedback went in, all or nothing, batches written at once by several connections)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import asyncpg
import pytest

from gateway.model import Caller
from gateway.store import CheckWriter, Store, StoredCheck
from gateway.store.pg import PgStore
from gateway.store.pg.checks import COPY_FROM, prepare, write_batch
from tests.store.helpers import (
    AnyStore,
    OpenStore,
    check,
    execute,
    feedback,
    fetch,
    integrity_error,
    query,
    record,
    recorder,
    run,
    uscc,
)


async def new_caller(store: AnyStore) -> Caller:
    caller, _ = await store.create_key("采购平台", "财政厅", ["check", "feedback"])
    return caller


def make_caller(path: Path) -> Caller:
    """A caller in the SQLite store at ``path`` (created if new): for the recorder's tests."""

    async def scenario() -> Caller:
        async with await Store.open(path) as store:
            return await new_caller(store)

    return run(scenario())


# PostgreSQL writes a batch of COPY_FROM checks or more by COPY, a smaller one in one
# statement: both ways keep the contract.
@pytest.mark.parametrize("size", [10, COPY_FROM])
def test_checks_and_feedback_are_written_and_read_back(open_store: OpenStore, size: int) -> None:
    async def scenario() -> None:
        async with await open_store() as store:
            caller = await new_caller(store)
            checks = [check(n, caller.caller_id) for n in range(size)]
            checks[3] = check(3, caller.caller_id, matter_code=None, case_ref=None, batch_id="b-1")
            # Feedback may name a check of its own batch.
            fb = [feedback(checks[0].check_id, caller.caller_id)]
            assert await record(store, checks, fb) == [True]
            assert await record(store, [], []) == []

            for n in (0, 1, 3, size - 1):
                stored = await store.get_check(checks[n].check_id)
                assert isinstance(stored, StoredCheck)
                # Every column round-trips, the response as the exact bytes sent.
                assert stored == StoredCheck(
                    **{f: getattr(checks[n], f) for f in checks[n].__struct_fields__}
                )
            assert await store.get_check("nope") is None
            assert await store.get_feedback(checks[0].check_id) == fb[0]
            assert await store.get_feedback(checks[1].check_id) is None

            recent = await store.recent_checks(uscc(3), limit=20)
            expected = sorted(
                (c for c in checks if c.uscc == uscc(3)), key=lambda c: c.check_id, reverse=True
            )[:20]
            assert [c.check_id for c in recent] == [c.check_id for c in expected]
            assert len(await store.recent_checks(uscc(3), limit=1)) == 1
            # Row numbers follow the batch's order (the upkeep and recent checks read them).
            rows = await fetch(store, "SELECT check_id FROM checks ORDER BY rowid")
            assert [r[0] for r in rows] == [c.check_id for c in checks]
            json = "SELECT hit_ids, measures FROM checks WHERE check_id = ?"
            assert await fetch(store, json, checks[0].check_id) == [
                ('["e1","e2"]', '[["bid_ban","apply"],["no_fast_track","suspended"]]')
            ]

    run(scenario())


@pytest.mark.parametrize("size", [3, COPY_FROM])
def test_duplicate_feedback_is_reported_not_written(open_store: OpenStore, size: int) -> None:
    async def scenario() -> None:
        async with await open_store() as store:
            caller = await new_caller(store)
            c1, c2, c3, *more = (check(n, caller.caller_id) for n in range(size))
            first = feedback(c1.check_id, caller.caller_id)
            conflicting = feedback(c1.check_id, caller.caller_id, outcome="已受理", body=b"{}")
            async with recorder(store) as write:
                assert await write([c1, c2], [first]) == [True]
                # Same check again (a retry, or a conflict the API answers with 409): not
                # inserted; within one batch only the first of two for the same check goes in.
                results = await write(
                    [c3, *more],
                    [
                        conflicting,
                        feedback(c2.check_id, caller.caller_id),
                        feedback(c2.check_id, 1),
                        feedback(c3.check_id, caller.caller_id),
                    ],
                )
                assert results == [False, True, False, True]
                assert await write([], [feedback(c3.check_id, 1)]) == [False]
            assert await fetch(
                store, "SELECT outcome, body FROM feedback WHERE check_id = ?", c1.check_id
            ) == [("不予受理", first.body)]
            assert await store.get_feedback(c2.check_id) == feedback(c2.check_id, caller.caller_id)
            assert await fetch(store, "SELECT count(*) FROM checks") == [(size,)]
            assert await fetch(store, "SELECT count(*) FROM feedback") == [(3,)]

    run(scenario())


@pytest.mark.parametrize("size", [2, COPY_FROM])
def test_a_failing_batch_writes_nothing_and_the_writer_goes_on(
    open_store: OpenStore, size: int
) -> None:
    async def scenario() -> None:
        async with await open_store() as store:
            caller = await new_caller(store)
            batch = [check(n, caller.caller_id) for n in range(100, 100 + size)]
            async with recorder(store) as write:
                await write([check(0, caller.caller_id)], [])
                with pytest.raises(integrity_error(store)):  # a check id written twice
                    await write([*batch, check(0, caller.caller_id)], [])
                with pytest.raises(integrity_error(store)):  # feedback on an unknown check
                    await write(batch, [feedback("missing", caller.caller_id)])
                with pytest.raises(integrity_error(store)):  # an unknown caller
                    await write([*batch[1:], check(1, 999)], [])
                assert await write([check(3, caller.caller_id)], []) == []
            assert await fetch(store, "SELECT count(*) FROM checks") == [(2,)]
            assert await fetch(store, "SELECT count(*) FROM feedback") == [(0,)]

    run(scenario())


def test_connections_recording_at_once_lose_and_duplicate_nothing(open_store: OpenStore) -> None:
    """Several recorders (CheckWriters in threads on SQLite, connections on PostgreSQL) write
    batches at once, and all send feedback for the same checks: every check is there once,
    with a row number of its own in its batch's order, and each check's feedback went in
    exactly once, whichever recorder won (half of them name the checks in the opposite
    order: on PostgreSQL, where they insert at once, that must not deadlock)."""
    writers, batches, per_batch = 4, 12, 30

    async def scenario() -> None:
        async with await open_store() as store:
            caller = await new_caller(store)
            shared = [check(n, caller.caller_id, check_id=f"shared-{n:03d}") for n in range(20)]
            await record(store, shared)

            async def recording(w: int) -> list[bool]:
                inserted = []
                async with recorder(store) as write:
                    for b in range(batches):
                        base = (w * batches + b) * per_batch
                        made = [
                            check(n, caller.caller_id, check_id=f"w{w}-{n:06d}")
                            for n in range(base, base + per_batch)
                        ]
                        fb = [
                            feedback(c.check_id, caller.caller_id, outcome=f"w{w}")
                            for c in shared[b : b + 9]
                        ]
                        if w % 2:  # the same checks in the opposite order: no deadlock
                            fb.reverse()
                        inserted += await write(made, fb)
                        await asyncio.sleep(0)
                return inserted

            results = await asyncio.gather(*(recording(w) for w in range(writers)))
            assert sum(map(sum, results)) == len(shared)  # each shared check: one winner
            rows = await fetch(store, "SELECT check_id, rowid FROM checks ORDER BY rowid")
            assert len(rows) == len(shared) + writers * batches * per_batch
            assert len({r[0] for r in rows}) == len(rows)
            assert len({r[1] for r in rows}) == len(rows)
            for w in range(writers):  # each recorder's checks in the order it wrote them
                mine = [r[0] for r in rows if r[0].startswith(f"w{w}-")]
                assert mine == sorted(mine)
            answered = await fetch(store, "SELECT check_id, outcome FROM feedback")
            assert sorted(r[0] for r in answered) == [c.check_id for c in shared]

    run(scenario())


def test_write_batch_commits_and_wants_a_connection_of_its_own(postgres_url: str) -> None:
    """PostgreSQL only: the batch is committed when write_batch returns (another connection
    sees it), and a connection inside a transaction is refused (the batch would not be)."""

    async def scenario() -> None:
        async with await PgStore.open(postgres_url) as store:
            caller = await new_caller(store)
        conn = await asyncpg.connect(postgres_url)
        try:
            await prepare(conn)
            assert await fetch(store, "SELECT count(*) FROM checks") == [(0,)]
            assert await write_batch(conn, [check(1, caller.caller_id)]) == []
            assert await fetch(store, "SELECT count(*) FROM checks") == [(1,)]
            async with conn.transaction():
                with pytest.raises(RuntimeError, match="outside any transaction"):
                    await write_batch(conn, [check(2, caller.caller_id)])
            assert not conn.is_in_transaction()
        finally:
            await conn.close()

    run(scenario())


def test_the_writer_connects_in_its_thread_and_migrates_a_new_file(tmp_path: Path) -> None:
    """SQLite only: CheckWriter's lazy connection, opened (and the file migrated) in the
    thread that writes first, closed from another."""
    path = tmp_path / "new" / "gateway.db"
    writer = CheckWriter(path, synchronous="normal")
    assert not path.exists()  # lazy: nothing opened before the first write
    errors: list[BaseException] = []

    def record_in_thread() -> None:
        try:
            # The first write migrates the new file, then fails: caller 1 does not exist yet.
            with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
                writer.write([check(1, 1)], [])
            execute(
                path,
                "INSERT INTO callers (caller_id, name, department, created_at) "
                "VALUES (1, 'a', 'b', 't')",
            )
            writer.write([check(1, 1)], [])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=record_in_thread)
    thread.start()
    thread.join()
    writer.close()  # from another thread than the one that connected
    assert errors == []
    assert query(path, "SELECT count(*) FROM checks") == [(1,)]
    with pytest.raises(RuntimeError, match="closed"):
        writer.write([check(2, 1)])
    with pytest.raises(ValueError, match="synchronous"):
        CheckWriter(path, synchronous="fast")

"""Several writers at once, on both backends: every write succeeds, none is lost, and the
change log's seqs are unique and in commit order (a follower never sees one appear below
one it has seen). Gap-free only on SQLite, where writers take turns on the file: on
PostgreSQL a rolled-back transaction may leave a gap (docs/postgresql.md, "Sequences")."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from typing import Any

from gateway.model import Grade
from gateway.store.control import bump_sync
from tests.store import workers
from tests.store.helpers import (
    AnyStore,
    OpenStore,
    entry,
    fetch,
    run,
    target_of,
    uscc,
)

LIST_WORKERS = 2
CHECK_WORKERS = 2
BATCHES = 15
BATCH_SIZE = 200


async def assert_seqs(store: AnyStore, backend: str, count: int) -> None:
    """``count`` changes, their seqs unique and increasing; 1 to ``count`` on SQLite."""
    seqs = [s for (s,) in await fetch(store, "SELECT seq FROM changes ORDER BY seq")]
    assert len(seqs) == count
    assert len(set(seqs)) == count
    assert await store.last_change_seq() == seqs[-1]
    if backend == "sqlite":
        assert seqs == list(range(1, count + 1))


def test_list_and_check_writers_in_separate_processes_all_succeed(
    backend: str, open_store: OpenStore
) -> None:
    """List writers in two processes (and, on SQLite, check writers in two more: the
    PostgreSQL recorder is not a ``CheckWriter``), while this process follows the change
    log: every write lands, and the follower sees every seq, in order."""

    async def scenario() -> None:
        async with await open_store() as store:
            target = target_of(store)
            caller, _ = await store.create_key("审批系统", "政务中心", ["check"])
            check_workers = CHECK_WORKERS if backend == "sqlite" else 0
            start_at = time.time() + 1.5
            context = multiprocessing.get_context("spawn")
            seen: list[int] = []
            with ProcessPoolExecutor(LIST_WORKERS + check_workers, mp_context=context) as pool:
                lists = [
                    pool.submit(workers.write_lists, target, w, BATCHES, BATCH_SIZE, start_at)
                    for w in range(LIST_WORKERS)
                ]
                checks = [
                    pool.submit(
                        workers.write_checks, target, w, caller.caller_id, BATCHES, start_at
                    )
                    for w in range(check_workers)
                ]
                done = asyncio.gather(*(asyncio.wrap_future(f) for f in [*lists, *checks]))
                while True:  # follow the change log as a worker does, until every writer ends
                    finished = done.done()
                    for seq, _ in await store.changes_since(seen[-1] if seen else 0):
                        seen.append(seq)
                    if finished:
                        break
                    await asyncio.sleep(0.01)
                assert [f.result() for f in lists] == [BATCHES * BATCH_SIZE] * LIST_WORKERS
                assert [f.result() for f in checks] == [BATCHES * 100] * check_workers

            entries = LIST_WORKERS * BATCHES * BATCH_SIZE
            assert await fetch(store, "SELECT count(*) FROM entries") == [(entries,)]
            if backend == "sqlite":
                checked = CHECK_WORKERS * BATCHES * 100
                assert await fetch(store, "SELECT count(*) FROM checks") == [(checked,)]
                fed_back = CHECK_WORKERS * (BATCHES - 1)
                assert await fetch(store, "SELECT count(*) FROM feedback") == [(fed_back,)]
            # one change per insert, repair, objection and grade
            mutations = entries + LIST_WORKERS * BATCHES * 3
            await assert_seqs(store, backend, mutations)
            assert seen == [
                s for (s,) in await fetch(store, "SELECT seq FROM changes ORDER BY seq")
            ]
            assert await fetch(store, "SELECT count(*) FROM entry_history") == [
                (entries + LIST_WORKERS * BATCHES * 2,)
            ]
            statuses = await fetch(
                store, "SELECT status, count(*) FROM entries GROUP BY status ORDER BY status"
            )
            assert statuses == [
                ("active", entries - 2 * LIST_WORKERS * BATCHES),
                ("objection_pending", LIST_WORKERS * BATCHES),
                ("repaired", LIST_WORKERS * BATCHES),
            ]

    run(scenario())


def test_concurrent_coroutines_on_one_store_do_not_mix_transactions(
    backend: str, open_store: OpenStore
) -> None:
    async def scenario() -> None:
        async with await open_store() as store:
            ids = (await store.upsert_entries([entry(n) for n in range(10)], "seed")).entry_ids
            bad = [entry(100 + n) for n in range(50)] + [entry(999, list_type="")]
            results = await asyncio.gather(
                *(store.upsert_entries([entry(1000 + n)], f"w{n}") for n in range(20)),
                *(store.repair(i, date(2026, 11, 1), "修复", "r") for i in ids),
                store.upsert_entries(bad, "bad"),
                *(store.changes_since(0) for _ in range(5)),
                return_exceptions=True,
            )
            errors = [r for r in results if isinstance(r, BaseException)]
            assert len(errors) == 1
            assert isinstance(errors[0], ValueError)
            await assert_seqs(store, backend, 10 + 20 + 10)
            assert await fetch(store, "SELECT count(*) FROM entries") == [(30,)]

    run(scenario())


def test_a_cancelled_write_is_all_or_nothing_and_the_store_stays_usable(
    open_store: OpenStore,
) -> None:
    async def scenario() -> None:
        async with await open_store() as store:
            rows = [entry(n) for n in range(20_000)]
            for delay in (0, 0.01, 0.1, 0.3):
                task = asyncio.create_task(store.upsert_entries(rows, "import"))
                await asyncio.sleep(delay)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                # Usable at once: no transaction left open on the connection.
                await store.put_grade(uscc(1), Grade("good"), "g")
                (count,) = (await fetch(store, "SELECT count(*) FROM entries"))[0]
                assert count in (0, len(rows))

    run(scenario())


def test_synchronous_bumps_and_the_stores_bumps_take_turns(open_store: OpenStore) -> None:
    """``control.bump_sync`` (SIGHUP, from the server's main process) given ``GATEWAY_DB``,
    in threads, while the store bumps the same key: every bump gets its own generation,
    with no gap, and the audit log's before and after chain from one to the next."""

    async def scenario() -> None:
        async with await open_store() as store:
            target = target_of(store)

            def bump_in_thread(n: int) -> int:
                return bump_sync(target, "catalog", f"sync{n}", "SIGHUP", "catalog.reload")

            generations = await asyncio.gather(
                *(asyncio.to_thread(bump_in_thread, n) for n in range(12)),
                *(
                    store.bump_control("catalog", f"api{n}", "api", "catalog.reload")
                    for n in range(8)
                ),
            )
            assert sorted(generations) == list(range(1, 21))
            # From a thread running an event loop too (it blocks it, as SQLite's does).
            assert bump_in_thread(99) == 21
            assert await store.control_generation("catalog") == (21, "sync99")

            lines = await store.audit(action="catalog.reload", limit=100)
            after: list[dict[str, Any]] = [line["after"] for line in lines]
            assert [a["generation"] for a in after] == list(range(1, 22))
            assert [line["before"] for line in lines] == [None, *after[:-1]]
            assert sorted(line["actor"] for line in lines) == ["SIGHUP"] * 13 + ["api"] * 8

    run(scenario())

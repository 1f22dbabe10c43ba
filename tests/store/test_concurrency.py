"""Several processes writing to one file at once: every write succeeds, none is lost."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from pathlib import Path

from gateway.model import Grade
from gateway.store import Store
from tests.store import workers
from tests.store.helpers import entry, query, run, uscc

LIST_WORKERS = 2
CHECK_WORKERS = 2
BATCHES = 15
BATCH_SIZE = 200


def test_list_and_check_writers_in_separate_processes_all_succeed(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"

    async def setup() -> int:
        async with await Store.open(path) as store:
            caller, _ = await store.create_key("审批系统", "政务中心", ["check"])
            return caller.caller_id

    caller_id = run(setup())
    start_at = time.time() + 1.5
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(LIST_WORKERS + CHECK_WORKERS, mp_context=context) as pool:
        lists = [
            pool.submit(workers.write_lists, str(path), w, BATCHES, BATCH_SIZE, start_at)
            for w in range(LIST_WORKERS)
        ]
        checks = [
            pool.submit(workers.write_checks, str(path), w, caller_id, BATCHES, start_at)
            for w in range(CHECK_WORKERS)
        ]
        assert [f.result(timeout=120) for f in lists] == [BATCHES * BATCH_SIZE] * LIST_WORKERS
        assert [f.result(timeout=120) for f in checks] == [BATCHES * 100] * CHECK_WORKERS

    entries = LIST_WORKERS * BATCHES * BATCH_SIZE
    assert query(path, "SELECT count(*) FROM entries") == [(entries,)]
    assert query(path, "SELECT count(*) FROM checks") == [(CHECK_WORKERS * BATCHES * 100,)]
    assert query(path, "SELECT count(*) FROM feedback") == [(CHECK_WORKERS * (BATCHES - 1),)]
    # one change per insert, repair, objection and grade; seqs unique and gap-free
    mutations = entries + LIST_WORKERS * BATCHES * 3
    assert query(path, "SELECT count(*), min(seq), max(seq) FROM changes") == [
        (mutations, 1, mutations)
    ]
    assert query(path, "SELECT count(*) FROM entry_history") == [
        (entries + LIST_WORKERS * BATCHES * 2,)
    ]
    statuses = query(path, "SELECT status, count(*) FROM entries GROUP BY status ORDER BY status")
    assert statuses == [
        ("active", entries - 2 * LIST_WORKERS * BATCHES),
        ("objection_pending", LIST_WORKERS * BATCHES),
        ("repaired", LIST_WORKERS * BATCHES),
    ]


def test_concurrent_coroutines_on_one_store_do_not_mix_transactions(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"

    async def scenario() -> None:
        async with await Store.open(path) as store:
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
            assert await store.last_change_seq() == 10 + 20 + 10

    run(scenario())
    assert query(path, "SELECT count(*) FROM entries") == [(30,)]


def test_a_cancelled_write_is_all_or_nothing_and_the_store_stays_usable(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"

    async def scenario() -> None:
        async with await Store.open(path) as store:
            rows = [entry(n) for n in range(20_000)]
            for delay in (0, 0.01, 0.1, 0.3):
                task = asyncio.create_task(store.upsert_entries(rows, "import"))
                await asyncio.sleep(delay)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                # Usable at once: no transaction left open on the connection.
                await store.put_grade(uscc(1), Grade("good"), "g")
                count = query(path, "SELECT count(*) FROM entries")[0][0]
                assert count in (0, len(rows))

    run(scenario())

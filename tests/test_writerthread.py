"""The recorder's writer thread: records handed over while another connection holds the
store's write lock wait for it, then go in as batches of at most ``max_batch`` records (or
on to the end of a batch check the limit would cut), in the order given; ``stop`` commits
what is queued."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from gateway.model import CheckRecord
from gateway.recording import Joint, Pending
from gateway.store import CheckWriter
from gateway.writerthread import WriterThread
from tests.store.helpers import check, write_lock_held
from tests.store.test_checks import make_caller


def stored(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT check_id FROM checks ORDER BY rowid")]


def test_records_wait_for_the_lock_then_go_in_whole_batches_in_order(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    caller = make_caller(db).caller_id
    records = [check(n, caller) for n in range(1, 30)]

    async def scenario() -> tuple[list[list[str]], list[bool]]:
        loop = asyncio.get_running_loop()
        batches: list[list[str]] = []

        def committed(batch: list[Pending], inserted: list[bool]) -> None:
            batches.append([r.check_id for r, _ in batch if isinstance(r, CheckRecord)])
            for _, future in batch:
                future.set_result(True)

        def failed(batch: list[Pending], exc: Exception) -> None:
            raise AssertionError(f"batch failed: {exc}")

        thread = WriterThread(loop, lambda: CheckWriter(db), 10, lambda _: None, committed, failed)
        await thread.start()
        singles = [loop.create_future() for _ in records[:4]]
        joint_future = loop.create_future()
        joint = Joint(joint_future, 8)  # a batch check of 8: never cut
        with write_lock_held(db):
            thread.add(list(zip(records[:4], singles, strict=True)))
            thread.add([(r, joint) for r in records[4:12]])
            thread.add([(r, loop.create_future()) for r in records[12:]])
            await asyncio.sleep(0.3)
            assert stored(db) == []
            assert batches == []
            assert len(thread) > 0
        await asyncio.wait_for(joint_future, 15)
        await thread.stop()  # what is still queued goes in first
        return batches, [f.result() for f in singles]

    batches, singles = asyncio.run(scenario())
    assert singles == [True] * 4
    assert [i for batch in batches for i in batch] == [r.check_id for r in records]
    together = {r.check_id for r in records[4:12]}
    assert any(together <= set(batch) for batch in batches)
    # at most 10 a batch, unless the 10th record would cut the batch check
    assert all(len(batch) <= 10 or together <= set(batch) for batch in batches)
    assert len(batches) >= 3
    assert stored(db) == [r.check_id for r in records]

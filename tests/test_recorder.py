"""The recorder: a record's future resolves only once its batch is committed to SQLite;
a full queue or a failed commit is refused loudly; stop() flushes what is queued."""

from __future__ import annotations

import asyncio
import doctest
import sqlite3
from pathlib import Path

import pytest

from gateway import pipeline, recording
from gateway.recorder import Recorder
from gateway.recording import RecorderFull
from gateway.store import CheckWriter, Store
from tests.store.helpers import batch_checks_commit_whole, check
from tests.store.test_checks import make_caller


def test_doctests() -> None:
    for module in (recording, pipeline):
        result = doctest.testmod(module)
        assert result.attempted > 0
        assert result.failed == 0


def stored_ids(db: Path) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        return {r[0] for r in conn.execute("SELECT check_id FROM checks")}
    finally:
        conn.close()


def test_futures_resolve_after_commit_and_stop_flushes(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    caller = make_caller(db).caller_id

    async def scenario() -> None:
        recorder = Recorder(lambda: CheckWriter(db))
        await recorder.start()
        first = recorder.submit(check(1, caller))
        assert await first is True
        assert "0193b6c2-0000-7000-8000-000000000001" in stored_ids(db)
        many = recorder.submit_many([check(n, caller) for n in range(2, 200)])
        last = recorder.submit(check(200, caller))
        await recorder.stop()  # flushes everything queued before returning
        assert all(f.done() and f.result() for f in [many, last])
        with pytest.raises(RecorderFull):
            recorder.submit(check(201, caller))

    asyncio.run(scenario())
    assert len(stored_ids(db)) == 200


def test_full_queue_is_refused_while_the_database_is_locked(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    caller = make_caller(db).caller_id
    blocker = sqlite3.connect(db, isolation_level=None)

    async def scenario() -> None:
        recorder = Recorder(lambda: CheckWriter(db, busy_timeout_ms=5_000), max_queue=10)
        await recorder.start()
        blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        pending = [recorder.submit(check(n, caller)) for n in range(1, 11)]
        await asyncio.sleep(0.2)
        with pytest.raises(RecorderFull):
            recorder.submit_many([check(n, caller) for n in range(11, 22)])
        assert not any(f.done() for f in pending), "nothing is acknowledged before commit"
        blocker.execute("ROLLBACK")
        assert await asyncio.gather(*pending) == [True] * 10
        assert recorder.submit(check(30, caller)) is not None
        await recorder.stop()

    try:
        asyncio.run(scenario())
    finally:
        blocker.close()
    assert len(stored_ids(db)) == 11


def test_a_failed_commit_fails_its_futures_and_the_next_batch_goes_through(
    tmp_path: Path,
) -> None:
    db = tmp_path / "g.db"
    caller = make_caller(db).caller_id

    async def scenario() -> None:
        recorder = Recorder(lambda: CheckWriter(db))
        await recorder.start()
        assert await recorder.submit(check(1, caller))
        duplicate = recorder.submit(check(1, caller))  # same check id: the commit fails
        with pytest.raises(RecorderFull):
            await duplicate
        assert "IntegrityError" in recorder.last_error
        assert await recorder.submit(check(2, caller))
        assert recorder.last_error == ""
        await recorder.stop()

    asyncio.run(scenario())
    assert len(stored_ids(db)) == 2


def test_a_batch_checks_records_commit_together_however_small_the_commits(
    tmp_path: Path,
) -> None:
    """Commits of 10 records: a batch check of 25 is not cut, so a duplicate among them
    refuses all 25 (none stored, not the first 10) and the caller's 503 tells the truth."""
    db = tmp_path / "g.db"
    caller = make_caller(db).caller_id

    async def scenario() -> set[str]:
        recorder = Recorder(lambda: CheckWriter(db), max_batch=10)
        await recorder.start()
        return await batch_checks_commit_whole(recorder, caller)

    expected = asyncio.run(scenario())
    assert stored_ids(db) == expected


def test_a_writer_that_cannot_start_is_an_error_at_start(tmp_path: Path) -> None:
    async def scenario() -> None:
        recorder = Recorder(lambda: CheckWriter(tmp_path / "missing" / "x" / "g.db").open())
        await recorder.start()
        await recorder.stop()

    (tmp_path / "missing").write_text("a file where a directory should be")
    with pytest.raises(OSError):  # noqa: PT011 - the OS decides which
        asyncio.run(scenario())


def test_store_sees_what_the_recorder_committed(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    caller = make_caller(db).caller_id

    async def scenario() -> None:
        recorder = Recorder(lambda: CheckWriter(db))
        await recorder.start()
        await recorder.submit(check(7, caller))
        async with await Store.open(db) as store:
            stored = await store.get_check("0193b6c2-0000-7000-8000-000000000007")
            assert stored is not None
        await recorder.stop()

    asyncio.run(scenario())

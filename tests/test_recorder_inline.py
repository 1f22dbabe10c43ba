"""The recorder's inline path: a turn's records are committed in the loop's thread without
waiting for the lock, and acknowledged only after an fsync of the log that began after
their commit; a held lock sends them to the writer thread; a failed fsync fails them.

The fsyncs here are the syncer thread's (``sync_command=None``), which the sync process
falls back to; the sync process's own tests are in ``test_syncprocess.py``."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from gateway.model import CheckRecord, FeedbackRecord
from gateway.recorder import Recorder
from gateway.recording import RecorderFull
from gateway.store import CheckWriter
from tests.store.helpers import check, submit_in_turns
from tests.store.test_checks import make_caller
from tests.test_recorder import stored_ids


class TracedWriter(CheckWriter):
    """A real writer that notes, in order, each inline commit and each log sync."""

    def __init__(
        self,
        db: Path,
        events: list[tuple[str, int]],
        fail_sync: bool = False,
        sync_seconds: float = 0.0,
    ) -> None:
        super().__init__(db, synchronous="NORMAL")
        self.events = events
        self.fail_sync = fail_sync
        self.sync_seconds = sync_seconds  # a slow disk
        self.transactions = 0
        #: The threads that committed (the event loop's, the inserter's).
        self.threads: set[int] = set()
        self._events_lock = threading.Lock()

    def try_write(
        self, checks: list[CheckRecord], feedback: list[FeedbackRecord]
    ) -> list[bool] | None:
        result = super().try_write(checks, feedback)
        if result is not None:
            self._committed(checks)
        return result

    def write(self, checks: list[CheckRecord], feedback: list[FeedbackRecord]) -> list[bool]:
        result = super().write(checks, feedback)
        self._committed(checks)
        return result

    def _committed(self, checks: list[CheckRecord]) -> None:
        with self._events_lock:
            self.threads.add(threading.get_ident())
            self.transactions += 1
            self.events.extend(("commit", 0) for _ in checks)

    def sync_wal(self) -> None:
        with self._events_lock:
            self.events.append(("sync-start", len(self.events)))
        if self.fail_sync:
            raise OSError(5, "Input/output error")
        time.sleep(self.sync_seconds)
        super().sync_wal()


def test_every_acknowledged_record_was_synced_after_its_commit(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    caller = make_caller(db).caller_id
    events: list[tuple[str, int]] = []
    acknowledged_after: dict[str, int] = {}

    async def scenario() -> None:
        recorder = Recorder(
            lambda: CheckWriter(db),
            inline_factory=lambda: TracedWriter(db, events).open(),
            sync_command=None,
        )
        await recorder.start()
        await submit_in_turns(
            recorder,
            caller,
            lambda cid: acknowledged_after.__setitem__(
                cid, sum(1 for kind, _ in events if kind == "sync-start")
            ),
        )

    asyncio.run(scenario())
    assert len(stored_ids(db)) == 300
    # Walk the events: a commit is durable once a sync starts after it; every
    # acknowledgement came after at least as many syncs as its commit needed.
    syncs_before_commit = []
    syncs = 0
    for kind, _ in events:
        if kind == "sync-start":
            syncs += 1
        else:
            syncs_before_commit.append(syncs)
    assert len(syncs_before_commit) == 300  # all 300 went inline
    needed = sorted(syncs_before_commit)
    got = sorted(acknowledged_after.values())
    assert all(g >= n + 1 for g, n in zip(got, needed, strict=True))
    assert syncs < 300, "one fsync serves several commits"


def test_records_submitted_during_an_fsync_are_committed_together_after_it(
    tmp_path: Path,
) -> None:
    db = tmp_path / "g.db"
    caller = make_caller(db).caller_id
    writer = TracedWriter(db, [], sync_seconds=0.05)

    async def scenario() -> None:
        recorder = Recorder(
            lambda: CheckWriter(db), inline_factory=lambda: writer.open(), sync_command=None
        )
        await recorder.start()
        # a slow disk: each fsync takes 50 ms
        assert await recorder.submit(check(1, caller))
        futures = [recorder.submit(check(2, caller))]
        await asyncio.sleep(0.005)
        for turn in range(20):  # 20 turns of the loop during that fsync, 5 checks each
            futures += [recorder.submit(check(3 + turn * 5 + n, caller)) for n in range(5)]
            await asyncio.sleep(0.001)
        assert writer.transactions == 2, "held back while the fsync runs"
        assert all(await asyncio.gather(*futures))
        await recorder.stop()

    asyncio.run(scenario())
    assert len(stored_ids(db)) == 102
    assert writer.transactions == 3  # check 1, check 2, then the 100 held back, in one


def test_a_held_lock_sends_the_turn_to_the_writer_thread(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    caller = make_caller(db).caller_id
    blocker = sqlite3.connect(db, isolation_level=None)

    async def scenario() -> None:
        recorder = Recorder(
            lambda: CheckWriter(db, busy_timeout_ms=5_000),
            inline_factory=lambda: CheckWriter(db, synchronous="NORMAL").open(),
        )
        await recorder.start()
        blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        started = asyncio.get_running_loop().time()
        pending = [recorder.submit(check(n, caller)) for n in range(1, 6)]
        await asyncio.sleep(0.2)
        # The loop was not blocked (this coroutine ran on time) and nothing is acknowledged.
        assert asyncio.get_running_loop().time() - started < 0.5
        assert not any(f.done() for f in pending)
        blocker.execute("ROLLBACK")
        assert await asyncio.gather(*pending) == [True] * 5
        await recorder.stop()

    try:
        asyncio.run(scenario())
    finally:
        blocker.close()
    assert len(stored_ids(db)) == 5


def test_a_failed_log_sync_fails_what_it_was_to_cover(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    caller = make_caller(db).caller_id
    writer = TracedWriter(db, [], fail_sync=True)

    async def scenario() -> None:
        recorder = Recorder(
            lambda: CheckWriter(db), inline_factory=lambda: writer.open(), sync_command=None
        )
        await recorder.start()
        failed = recorder.submit(check(1, caller))
        with pytest.raises(RecorderFull):
            await failed
        assert "OSError" in recorder.last_error
        writer.fail_sync = False
        assert await recorder.submit(check(2, caller))
        assert recorder.last_error == ""
        await recorder.stop()

    asyncio.run(scenario())


def test_stop_flushes_the_turn_and_the_syncer(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    caller = make_caller(db).caller_id

    async def scenario() -> list[bool]:
        recorder = Recorder(
            lambda: CheckWriter(db),
            inline_factory=lambda: CheckWriter(db, synchronous="NORMAL").open(),
        )
        await recorder.start()
        durable = recorder.submit_many([check(n, caller) for n in range(1, 51)])
        await recorder.stop()  # before the loop turned: stop commits and syncs them
        assert durable.done()
        return durable.result()

    assert asyncio.run(scenario()) is True
    assert len(stored_ids(db)) == 50


def test_a_lock_held_for_a_moment_is_waited_for_inline_not_by_the_thread(
    tmp_path: Path,
) -> None:
    db = tmp_path / "g.db"
    caller = make_caller(db).caller_id
    events: list[tuple[str, int]] = []
    blocker = sqlite3.connect(db, isolation_level=None)

    async def scenario() -> None:
        recorder = Recorder(
            lambda: CheckWriter(db), inline_factory=lambda: TracedWriter(db, events).open()
        )
        await recorder.start()
        blocker.execute("BEGIN IMMEDIATE")  # e.g. another worker's commit, a step of upkeep
        pending = [recorder.submit(check(n, caller)) for n in range(1, 4)]
        await asyncio.sleep(0.01)
        assert not any(f.done() for f in pending)
        blocker.execute("ROLLBACK")
        assert await asyncio.gather(*pending) == [True] * 3
        await recorder.stop()

    try:
        asyncio.run(scenario())
    finally:
        blocker.close()
    # Committed by the inline writer once the lock was free (the thread never took them).
    assert [kind for kind, _ in events].count("commit") == 3

"""Checks inserted behind their frames (``gateway.storebehind``): answered once framed,
inserted many turns at a time, visible to the worker's reads meanwhile, never counted as
covered in the record log before they are in the store (so a crash loses none), inserted
with feedback that needs them, and inserted before the log fsyncs the store itself."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

from gateway.model import FeedbackRecord, MeasureFeedback
from gateway.recorder import Recorder
from gateway.store import CheckWriter
from gateway.store.backend import record_log_opener
from tests.store.helpers import check, write_lock_held
from tests.store.test_checks import make_caller
from tests.test_recorder import stored_ids
from tests.test_recorder_inline import TracedWriter
from tests.test_recordlog import recovered_from_a_copy


def held_recorder(
    db: Path,
    events: list[tuple[str, int]],
    delay: float,
    *,
    ring_bytes: int = 1 << 20,
    sync_interval: float = 0.01,
) -> tuple[Recorder, list[TracedWriter]]:
    writers: list[TracedWriter] = []

    def inline() -> TracedWriter:
        writers.append(TracedWriter(db, events).open())
        return writers[-1]

    recorder = Recorder(
        lambda: CheckWriter(db),
        inline_factory=inline,
        sync_command=None,
        record_log_factory=record_log_opener(str(db), ring_bytes, sync_interval=sync_interval),
        store_delay=delay,
    )
    return recorder, writers


def feedback_on(check_id: str, caller: int) -> FeedbackRecord:
    return FeedbackRecord(
        check_id=check_id,
        caller_id=caller,
        measures=(MeasureFeedback("P-BID-01", True, None),),
        outcome="不予受理",
        handled_by=None,
        handled_at=None,
        received_at="2026-12-07T10:00:00.000+08:00",
        body=b"{}",
    )


def test_checks_are_answered_when_framed_and_inserted_turns_at_a_time(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    caller = make_caller(db).caller_id
    events: list[tuple[str, int]] = []
    in_store_when_answered: list[int] = []
    seen_held: list[bool] = []

    async def scenario() -> None:
        recorder, writers = held_recorder(db, events, delay=0.05)
        await recorder.start()
        ids = []
        for turn in range(5):
            records = [check(turn * 10 + n + 1, caller) for n in range(10)]
            ids += [r.check_id for r in records]
            await asyncio.gather(*(recorder.submit(r) for r in records))
        in_store_when_answered.append(len(stored_ids(db)))
        seen_held.extend(recorder.held_check(i) is not None for i in ids)
        assert recorder.depth == 50  # held checks count against the queue
        await asyncio.sleep(0.2)
        assert sum(w.transactions for w in writers) == 1  # five turns, one insert
        assert len(writers) == 2  # by the inserter thread's own connection
        assert recorder.held_check(ids[0]) is None
        await recorder.stop()

    asyncio.run(scenario())
    assert in_store_when_answered == [0]  # answered from their frames alone
    assert seen_held == [True] * 50  # the worker's reads see them meanwhile
    assert len(stored_ids(db)) == 50


def test_a_held_check_is_not_covered_in_the_log_until_it_is_in_the_store(
    tmp_path: Path,
) -> None:
    """The store syncer fsyncs SQLite's log every 10 ms, but a crash while the checks are
    held leaves them to recover from the log: they are not in the store yet."""
    db = tmp_path / "g.db"
    caller = make_caller(db).caller_id
    left: list[list[str]] = []

    async def scenario() -> None:
        recorder, _ = held_recorder(db, [], delay=30.0)
        await recorder.start()
        assert recorder.record_log is not None
        records = [check(n + 1, caller) for n in range(20)]
        await asyncio.gather(*(recorder.submit(r) for r in records))
        await asyncio.sleep(0.2)  # many fsyncs of the store meanwhile
        await recorder.submit(check(21, caller))  # its frame tells how far the log is covered
        await asyncio.sleep(0.05)
        left.append(recovered_from_a_copy(recorder.record_log, tmp_path))
        await recorder.stop()  # inserts what it holds, then marks the log

    asyncio.run(scenario())
    assert len(left[0]) == 21
    assert len(stored_ids(db)) == 21


def test_feedback_on_a_held_check_is_inserted_with_it(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    caller = make_caller(db).caller_id
    answers: list[bool] = []

    async def scenario() -> None:
        recorder, _ = held_recorder(db, [], delay=30.0)
        await recorder.start()
        made = check(1, caller)
        await recorder.submit(made)
        assert recorder.held_check(made.check_id) is not None
        # the check's row is needed first (the foreign key)
        answers.append(await recorder.submit(feedback_on(made.check_id, caller)))
        assert recorder.held_check(made.check_id) is None
        await recorder.stop()

    asyncio.run(scenario())
    assert answers == [True]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM feedback").fetchone() == (1,)


def test_a_locked_store_holds_back_the_insert_not_the_answer(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    caller = make_caller(db).caller_id
    answered_while_locked: list[int] = []

    async def scenario() -> None:
        recorder, _ = held_recorder(db, [], delay=0.01)
        await recorder.start()
        with write_lock_held(db):
            records = [check(n + 1, caller) for n in range(10)]
            await asyncio.wait_for(asyncio.gather(*(recorder.submit(r) for r in records)), 5)
            answered_while_locked.append(len(records))
            await asyncio.sleep(0.1)  # the inserter thread waits for the lock meanwhile
            assert recorder.held_check(records[0].check_id) is not None
        await recorder.store_held()
        await recorder.stop()

    asyncio.run(scenario())
    assert answered_while_locked == [10]
    assert len(stored_ids(db)) == 10


def test_the_insert_waits_for_the_lock_beside_the_loop_and_what_comes_meanwhile_follows(
    tmp_path: Path,
) -> None:
    """The held checks are inserted by a thread of their own: while its insert waits for a
    lock held elsewhere, the loop answers the next turns, holds them, and the worker's reads
    find both; the later checks go in the next insert, once the first is over."""
    db = tmp_path / "g.db"
    caller = make_caller(db).caller_id
    loop_thread: list[int] = []

    async def scenario() -> None:
        loop_thread.append(threading.get_ident())
        recorder, writers = held_recorder(db, [], delay=0.01)
        await recorder.start()
        with write_lock_held(db):
            first = [check(n + 1, caller) for n in range(10)]
            await asyncio.wait_for(asyncio.gather(*(recorder.submit(r) for r in first)), 5)
            await asyncio.sleep(0.05)  # the inserter has taken them and waits for the lock
            later = [check(n + 11, caller) for n in range(10)]
            await asyncio.wait_for(asyncio.gather(*(recorder.submit(r) for r in later)), 5)
            await asyncio.sleep(0.05)
            assert all(recorder.held_check(r.check_id) for r in first + later)
            assert stored_ids(db) == set()
        await asyncio.wait_for(recorder.store_held(), 5)
        assert sum(w.transactions for w in writers) == 2  # the first ten, then the next ten
        assert all(loop_thread[0] not in w.threads for w in writers)
        await recorder.stop()
        assert not [t for t in threading.enumerate() if t.name.startswith("store-behind")]

    asyncio.run(scenario())
    assert len(stored_ids(db)) == 20


def test_a_full_ring_inserts_what_is_held_before_fsyncing_the_store(tmp_path: Path) -> None:
    """A ring of 64 KiB holds a few turns, and the store is fsynced once in 30 s: writing on
    makes the log ask for what is held to be inserted, fsync the store and go on; held
    checks are bounded by the ring (8 here), past which a turn's checks are inserted before
    their frame; nothing is lost."""
    db = tmp_path / "g.db"
    caller = make_caller(db).caller_id
    stalls: list[int] = []
    stored_before_stop: list[int] = []

    async def scenario() -> None:
        recorder, _ = held_recorder(db, [], delay=30.0, ring_bytes=64 << 10, sync_interval=30.0)
        await recorder.start()
        assert recorder.record_log is not None
        for turn in range(20):
            records = [check(turn * 20 + n + 1, caller) for n in range(20)]
            await asyncio.gather(*(recorder.submit(r) for r in records))
        stalls.append(recorder.record_log.stalls)
        stored_before_stop.append(len(stored_ids(db)))  # not by the timer: it is 30 s
        await recorder.stop()

    asyncio.run(scenario())
    assert stalls[0] >= 1
    assert stored_before_stop[0] >= 20
    assert len(stored_ids(db)) == 400


def test_feedback_waits_for_a_locked_store_and_checks_of_its_turn_do_not(
    tmp_path: Path,
) -> None:
    db = tmp_path / "g.db"
    caller = make_caller(db).caller_id
    events: list[str] = []

    async def scenario() -> None:
        recorder, _ = held_recorder(db, [], delay=0.01)
        await recorder.start()
        made = check(1, caller)
        await recorder.submit(made)
        with write_lock_held(db):
            given = recorder.submit(feedback_on(made.check_id, caller))
            beside = recorder.submit(check(2, caller))  # the same turn as the feedback
            given.add_done_callback(lambda _: events.append("feedback"))
            await asyncio.wait_for(beside, 5)
            events.append("check")
            await asyncio.sleep(0.1)
            assert not given.done()
        assert await asyncio.wait_for(given, 5) is True
        await recorder.stop()

    asyncio.run(scenario())
    assert events == ["check", "feedback"]
    assert len(stored_ids(db)) == 2
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM feedback").fetchone() == (1,)


def test_waiting_for_what_is_held_ends_while_checks_keep_coming(tmp_path: Path) -> None:
    """A report waits for the checks answered before it, not for a lull that never comes."""
    db = tmp_path / "g.db"
    caller = make_caller(db).caller_id
    seen: list[bool] = []

    async def scenario() -> None:
        recorder, _ = held_recorder(db, [], delay=30.0)
        await recorder.start()
        first = check(1, caller)
        await recorder.submit(first)
        stop = asyncio.Event()

        async def keep_checking() -> None:
            n = 2
            while not stop.is_set():
                await recorder.submit(check(n, caller))
                n += 1

        busy = asyncio.create_task(keep_checking())
        await asyncio.sleep(0.05)
        await asyncio.wait_for(recorder.store_held(), 5)
        seen.append(first.check_id in stored_ids(db))
        stop.set()
        await busy
        await recorder.stop()

    asyncio.run(scenario())
    assert seen == [True]


def test_past_what_the_ring_allows_held_a_locked_store_holds_answers_back(
    tmp_path: Path,
) -> None:
    """Held checks are bounded by the ring (64 KiB: 8), so that their frames never fill it:
    with the store locked, the ninth check waits for the lock, as without holding."""
    db = tmp_path / "g.db"
    caller = make_caller(db).caller_id
    answered: list[int] = []

    async def scenario() -> None:
        recorder, _ = held_recorder(db, [], delay=30.0, ring_bytes=64 << 10)
        await recorder.start()
        with write_lock_held(db):
            for n in range(8):
                await asyncio.wait_for(recorder.submit(check(n + 1, caller)), 5)
            answered.append(8)
            ninth = recorder.submit(check(9, caller))
            await asyncio.sleep(0.2)
            assert not ninth.done()
        await asyncio.wait_for(ninth, 5)
        answered.append(9)
        await recorder.stop()

    asyncio.run(scenario())
    assert answered == [8, 9]
    assert len(stored_ids(db)) == 9


def test_an_insert_that_fails_is_told_until_one_succeeds(tmp_path: Path) -> None:
    """The store refuses the held checks (a trigger): they stay held and framed, the
    recorder says why (``/readyz`` shows it), and once the store takes them it says
    nothing more."""
    db = tmp_path / "g.db"
    caller = make_caller(db).caller_id
    errors: list[str] = []

    async def scenario() -> None:
        recorder, _ = held_recorder(db, [], delay=0.01)
        await recorder.start()
        with sqlite3.connect(db) as conn:
            conn.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON checks "
                "BEGIN SELECT RAISE(ABORT, 'refused for the test'); END"
            )
        made = check(1, caller)
        await recorder.submit(made)  # answered: its frame is written
        await asyncio.sleep(0.1)
        errors.append(recorder.last_error)
        assert recorder.held_check(made.check_id) is not None
        with sqlite3.connect(db) as conn:
            conn.execute("DROP TRIGGER refuse")
        await asyncio.sleep(0.3)  # tried again after 0.1 s
        errors.append(recorder.last_error)
        await recorder.stop()

    asyncio.run(scenario())
    assert "refused for the test" in errors[0]
    assert errors[1] == ""
    assert len(stored_ids(db)) == 1

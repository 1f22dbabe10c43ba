"""Upkeep off the commit path, on both backends: checks are indexed by subject in bulk,
every check of a subject is found whether it is indexed yet or not, the upkeep waits for
a lull under load. On PostgreSQL also: a batch another node is still committing is never
skipped, and upkeeps running at once index and count each row once. The WAL checkpoint
is SQLite's only."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from gateway.store import CheckWriter, Maintenance, subject_index
from gateway.store import checkpoint as wal_checkpoint
from gateway.store.checks import CHECK_COLUMNS, check_params
from gateway.store.pg import PgStore
from gateway.store.pg.checks import write_batch
from gateway.store.pg.maintenance import PgMaintenance
from tests.store.helpers import (
    AnyStore,
    OpenStore,
    Upkeep,
    check,
    execute_sql,
    feedback,
    fetch,
    record,
    recorder,
    run,
    uscc,
)
from tests.store.test_checks import make_caller, new_caller


def test_recent_checks_span_indexed_and_not_yet_indexed(open_store: OpenStore) -> None:
    days = ["2026-10-30", "2026-11-20", "2026-11-21"]

    async def scenario() -> None:
        async with await open_store() as store, Upkeep(store) as upkeep:
            caller = await new_caller(store)
            await record(
                store,
                [
                    check(
                        n,
                        caller.caller_id,
                        uscc=uscc(1 if n % 2 else 2),
                        checked_at=f"{days[n % 3]}T10:00:00.000+08:00",
                    )
                    for n in range(1, 31)
                ],
            )
            assert await upkeep.run_once() == 30
            assert await upkeep.run_once() == 0
            await record(store, [check(n, caller.caller_id, uscc=uscc(1)) for n in range(31, 34)])

            recent = await store.recent_checks(uscc(1), limit=100)
            assert len(recent) == 18  # 15 indexed + 3 recorded since
            assert [c.check_id for c in recent] == sorted(
                (c.check_id for c in recent), reverse=True
            )
            assert {c.uscc for c in recent} == {uscc(1)}
            assert len(await store.recent_checks(uscc(1), limit=4)) == 4
            assert await store.recent_checks(uscc(9), limit=5) == []
            indexed = await fetch(store, "SELECT count(*), count(DISTINCT day) FROM subject_checks")
            assert indexed == [(30, 3)]

    run(scenario())


def test_checkpoint_reports_the_wal(tmp_path: Path) -> None:
    """SQLite only: PostgreSQL checkpoints itself."""
    db = tmp_path / "g.db"
    caller = make_caller(db)
    with CheckWriter(db) as writer:
        writer.write([check(n, caller.caller_id) for n in range(1, 50)])
        maintenance = Maintenance(db)
        frames, copied = maintenance.checkpoint()
        assert frames > 0
        assert copied == frames
        maintenance.close()


def test_under_load_upkeep_waits_for_a_lull_unless_the_wal_is_too_large(tmp_path: Path) -> None:
    """SQLite only: under load, the checkpoint waits too unless the WAL is past its limit."""
    db = tmp_path / "g.db"
    caller = make_caller(db)
    with CheckWriter(db) as writer:
        maintenance = Maintenance(db)
        maintenance.checkpoint()  # the migrations' pages are in the database file
        size = db.stat().st_size
        writer.write([check(n, caller.caller_id) for n in range(1, 201)])
        assert maintenance.run_once(busy=True) == 0
        assert db.stat().st_size == size  # not checkpointed
        assert maintenance.run_once(busy=True, wal_limit=1) == 0
        assert db.stat().st_size > size
        maintenance.close()


def test_the_upkeeps_steps_leave_the_checkpoint_to_the_paced_one(tmp_path: Path) -> None:
    """SQLite only: a step's commit never runs SQLite's own checkpoint, whatever the size of
    the log (by default every commit past 1,000 pages does): an unpaced copy of the whole
    log after every step under load, whose writes and fsync held up the recorder's."""
    db = tmp_path / "g.db"
    caller = make_caller(db)
    with CheckWriter(db) as writer:
        maintenance = Maintenance(db)
        maintenance.checkpoint()
        size = db.stat().st_size
        writer.write([check(n, caller.caller_id) for n in range(1, 20_001)])
        assert maintenance.wal_bytes() > 1_000 * 4096  # past SQLite's own threshold
        assert maintenance.index_subjects(100) == 100
        assert maintenance.roll_up_loop(100) > 0
        assert db.stat().st_size == size  # nothing checkpointed
        maintenance.close()


def test_a_lulls_steps_keep_the_log_within_its_limit(tmp_path: Path) -> None:
    """SQLite only: indexing a large backlog in a lull writes pages of the index's log; the
    steps checkpoint whenever a log passes its limit, rather than once at the end of a
    lull that grew it by gigabytes (and that the load may come back in the middle of)."""
    db = tmp_path / "g.db"
    caller = make_caller(db)
    with CheckWriter(db) as writer:
        writer.write([check(n, caller.caller_id) for n in range(1, 6_001)])
        maintenance = Maintenance(db)
        maintenance.checkpoint()
        maintenance.index_step = 500  # steps of about 100 KB of the log here
        limit = 256 * 1024
        largest = 0
        real_step = maintenance.index_subjects

        def step(limit_: int = 1_000) -> int:
            nonlocal largest
            done = real_step(limit_)
            # what the steps made of the index's log
            largest = max(largest, wal_checkpoint.log_in_use(subject_index.path_for(db)))
            return done

        maintenance.index_subjects = step  # type: ignore[method-assign]
        assert maintenance.run_once(busy=False, wal_limit=limit) == 6_000
        assert largest < 2 * limit
        maintenance.close()


def test_under_load_upkeep_waits_for_a_lull_unless_the_backlog_is_too_large(
    open_store: OpenStore,
) -> None:
    async def scenario() -> None:
        async with await open_store() as store, Upkeep(store) as upkeep:
            caller = await new_caller(store)
            await record(store, [check(n, caller.caller_id) for n in range(1, 201)])
            # Busy: nothing indexed.
            assert await upkeep.run_once(busy=True) == 0
            assert await upkeep.pending() == 200
            assert await fetch(store, "SELECT count(*) FROM subject_checks") == [(0,)]
            # Busy, but past the backlog: indexed in steps.
            assert await upkeep.run_once(busy=True, backlog=100) == 200
            await record(store, [check(n, caller.caller_id) for n in range(201, 211)])
            assert await upkeep.run_once(busy=False) == 10  # a lull: everything
            assert await upkeep.pending() == 0
            assert await fetch(store, "SELECT count(*) FROM subject_checks") == [(210,)]

    run(scenario())


def test_under_a_steady_load_the_upkeep_trickles_past_a_smaller_backlog(
    open_store: OpenStore,
) -> None:
    """A steady load that never leaves a worker idle would leave every check unindexed and
    not rolled up until the big backlog, and every report scanning that tail: past
    ``trickle_after`` the upkeep does a few steps a tick even while checks come in."""

    async def scenario() -> None:
        async with await open_store() as store, Upkeep(store) as upkeep:
            caller = await new_caller(store)
            await record(store, [check(n, caller.caller_id) for n in range(1, 1_201)])
            assert await upkeep.run_once(busy=True, trickle_after=1_200) == 0  # not past it
            assert await upkeep.pending() == 1_200
            indexed = 0
            # A tick at a time, the load going on between them; at least a step a tick, so
            # at most as many ticks as it takes steps. A tick trickles for a time budget,
            # not a count: where it stops depends on the machine's speed, anywhere from
            # the threshold down to nothing left.
            step = upkeep.inner.trickle_step
            for _ in range(-(-1_200 // step)):
                before = await upkeep.pending()
                if before <= 50:
                    break
                indexed += await upkeep.run_once(busy=True, trickle_after=50)
                after = await upkeep.pending()
                assert after <= max(before - step, 0), "a step a tick at least"
            assert 1_200 - 50 <= indexed <= 1_200
            assert await upkeep.pending() <= 50  # rolled up as well, down to the threshold
            rows = await fetch(store, "SELECT count(*) FROM subject_checks")
            assert rows == [(indexed,)]

    run(scenario())


async def unindexed(store: AnyStore) -> int:
    rows = await fetch(
        store, "SELECT (SELECT max(rowid) FROM checks) - last_rowid FROM subject_checks_mark"
    )
    return int(rows[0][0])


def test_a_lulls_work_stops_when_checks_are_recorded_again(open_store: OpenStore) -> None:
    """Indexing in a lull goes in steps and stops as soon as this worker records again (its
    probe) or another does (the checks table grew): run to the end, its steps starved the
    other workers' commits when the load came back."""

    async def scenario() -> None:
        async with await open_store() as store, Upkeep(store) as upkeep:
            caller = await new_caller(store)
            await record(store, [check(n, caller.caller_id) for n in range(1, 2001)])
            inner = upkeep.inner
            if isinstance(inner, Maintenance):
                inner.index_step = 500  # a few steps in 2,000 checks, as on PostgreSQL
            step = inner.index_step
            answers = iter([False, False, True])  # idle at the start and after a step, then busy
            assert await upkeep.run_once(busy=lambda: next(answers, True)) == 2 * step
            assert await unindexed(store) == 2000 - 2 * step

            # After the next step, another worker commits a check.
            real_step = inner.index_subjects
            if isinstance(inner, Maintenance):
                writer = CheckWriter(store.path)

                def step_sqlite(limit: int = 1_000) -> int:
                    done = real_step(limit)
                    assert isinstance(done, int)
                    writer.write([check(5000 + done, caller.caller_id)])
                    return done

                inner.index_subjects = step_sqlite  # type: ignore[method-assign]
            else:
                assert isinstance(inner, PgMaintenance)
                other = await asyncpg.connect(inner.dsn)
                pg_step = inner.index_subjects

                async def step_postgres(limit: int = 1_000) -> int:
                    done = await pg_step(limit)
                    await write_batch(other, [check(5000 + done, caller.caller_id)])
                    return done

                inner.index_subjects = step_postgres  # type: ignore[method-assign]
            assert await upkeep.run_once(busy=lambda: False) == step
            inner.index_subjects = real_step  # type: ignore[method-assign]
            if isinstance(inner, Maintenance):
                writer.close()
            else:
                await other.close()
            assert await upkeep.run_once(busy=lambda: False) == 2000 - 3 * step + 1
            assert await upkeep.pending() == 0

    run(scenario())


# --- PostgreSQL only: several nodes ---------------------------------------------------------


def test_a_batch_still_being_committed_is_not_skipped(postgres_url: str) -> None:
    """Another node's batch drew lower row numbers than one committed after it: the upkeep
    waits for it to commit rather than move its watermarks past it (on SQLite writers take
    turns, so this cannot happen)."""

    async def scenario() -> None:
        async with await PgStore.open(postgres_url) as store, Upkeep(store) as upkeep:
            caller = await new_caller(store)
            slow = await asyncpg.connect(postgres_url)
            try:
                transaction = slow.transaction()
                await transaction.start()
                await slow.copy_records_to_table(
                    "checks",
                    records=[check_params(check(1, caller.caller_id))],
                    columns=[c.strip() for c in CHECK_COLUMNS.split(",")],
                )
                await slow.execute(
                    "INSERT INTO feedback (check_id, caller_id, measures, received_at, body) "
                    "SELECT check_id, caller_id, '[]', 't', '' FROM checks"
                )
                # Rows 2 and 3 are committed while row 1 is not.
                await record(
                    store,
                    [check(2, caller.caller_id), check(3, caller.caller_id)],
                    [feedback(check(2, caller.caller_id).check_id, caller.caller_id)],
                )
                running = asyncio.ensure_future(upkeep.run_once())
                await asyncio.sleep(0.3)
                assert not running.done()  # waiting for the batch in flight
                await transaction.commit()
                assert await running == 3
            finally:
                await slow.close()
            assert await fetch(store, "SELECT count(*) FROM subject_checks") == [(3,)]
            rolled = await fetch(
                store,
                "SELECT sum(checks), sum(feedback_received) FROM loop_daily "
                "WHERE dimension = 'caller'",
            )
            assert [tuple(map(int, r)) for r in rolled] == [(3, 2)]
            assert await upkeep.pending() == 0

    run(scenario())


def test_upkeeps_running_at_once_index_and_count_each_row_once(postgres_url: str) -> None:
    """Two nodes' upkeeps in small steps, racing each other and the recorders: the index and
    the daily counts are what one upkeep makes of the same rows, from scratch."""
    tables = (
        "SELECT day, uscc, check_id FROM subject_checks ORDER BY 1, 2, 3",
        "SELECT * FROM loop_daily ORDER BY day, dimension, key",
    )

    async def scenario() -> None:
        async with await PgStore.open(postgres_url) as store:
            caller = await new_caller(store)
            days = ["2026-11-19", "2026-11-20", "2026-11-21"]

            async def recording(w: int) -> None:
                async with recorder(store) as write:
                    for b in range(20):
                        made = [
                            check(
                                n,
                                caller.caller_id,
                                check_id=f"w{w}-{n:05d}",
                                checked_at=f"{days[n % 3]}T09:00:00+08:00",
                            )
                            for n in range(b * 25, b * 25 + 25)
                        ]
                        answered = [feedback(c.check_id, caller.caller_id) for c in made[::3]]
                        await write(made, answered)
                        await asyncio.sleep(0.005)

            async def upkeeping(done: asyncio.Event) -> None:
                upkeep = PgMaintenance(postgres_url)
                try:
                    while not done.is_set() or await upkeep.pending():
                        await upkeep.index_subjects(17)
                        await upkeep.roll_up_loop(13)
                finally:
                    await upkeep.close()

            done = asyncio.Event()
            upkeeps = [asyncio.ensure_future(upkeeping(done)) for _ in range(2)]
            await asyncio.gather(*(recording(w) for w in range(3)))
            done.set()
            await asyncio.gather(*upkeeps)
            raced = [await fetch(store, sql) for sql in tables]
            assert len(raced[0]) == 3 * 20 * 25

            await execute_sql(
                store,
                "DELETE FROM subject_checks; DELETE FROM loop_daily; "
                "UPDATE subject_checks_mark SET last_rowid = 0; "
                "UPDATE loop_marks SET last_rowid = 0",
            )
            async with Upkeep(store) as alone:
                await alone.run_once()
            assert [await fetch(store, sql) for sql in tables] == raced

    run(scenario())

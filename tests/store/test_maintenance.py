"""Upkeep off the commit path: checks are indexed by subject in bulk, and every check of a
subject is found whether it is indexed yet or not."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.store import CheckWriter, Maintenance, Store
from gateway.store.maintenance import LULL_STEP
from tests.store.helpers import check, run, uscc
from tests.store.test_checks import make_caller


def test_recent_checks_span_indexed_and_not_yet_indexed(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    caller = make_caller(db)
    days = ["2026-10-30", "2026-11-20", "2026-11-21"]
    with CheckWriter(db) as writer:
        writer.write(
            [
                check(
                    n,
                    caller.caller_id,
                    uscc=uscc(1 if n % 2 else 2),
                    checked_at=f"{days[n % 3]}T10:00:00.000+08:00",
                )
                for n in range(1, 31)
            ]
        )
        maintenance = Maintenance(db)
        assert maintenance.run_once() == 30
        assert maintenance.run_once() == 0
        writer.write([check(n, caller.caller_id, uscc=uscc(1)) for n in range(31, 34)])

    async def scenario() -> None:
        async with await Store.open(db) as store:
            recent = await store.recent_checks(uscc(1), limit=100)
            assert len(recent) == 18  # 15 indexed + 3 recorded since
            assert [c.check_id for c in recent] == sorted(
                (c.check_id for c in recent), reverse=True
            )
            assert {c.uscc for c in recent} == {uscc(1)}
            assert len(await store.recent_checks(uscc(1), limit=4)) == 4
            assert await store.recent_checks(uscc(9), limit=5) == []

    run(scenario())
    conn = sqlite3.connect(db)
    try:
        indexed = conn.execute("SELECT count(*), count(DISTINCT day) FROM subject_checks")
        assert indexed.fetchone() == (30, 3)
    finally:
        conn.close()
    maintenance.close()


def test_checkpoint_reports_the_wal(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    caller = make_caller(db)
    with CheckWriter(db) as writer:
        writer.write([check(n, caller.caller_id) for n in range(1, 50)])
        maintenance = Maintenance(db)
        frames, copied = maintenance.checkpoint()
        assert frames > 0
        assert copied == frames
        maintenance.close()


def test_under_load_upkeep_waits_for_a_lull_unless_the_backlog_or_wal_is_too_large(
    tmp_path: Path,
) -> None:
    db = tmp_path / "g.db"
    caller = make_caller(db)
    with CheckWriter(db) as writer:
        maintenance = Maintenance(db)
        maintenance.checkpoint()  # the migrations' pages are in the database file
        size = db.stat().st_size
        writer.write([check(n, caller.caller_id) for n in range(1, 201)])
        # Busy: neither indexed nor checkpointed (the database file did not grow).
        assert maintenance.run_once(busy=True) == 0
        assert maintenance.pending() == 200
        assert db.stat().st_size == size
        # Busy, but past the limits: indexed in steps, and checkpointed.
        assert maintenance.run_once(busy=True, backlog=100, wal_limit=1) == 200
        assert db.stat().st_size > size
        writer.write([check(n, caller.caller_id) for n in range(201, 211)])
        assert maintenance.run_once(busy=False) == 10  # a lull: everything
        assert maintenance.pending() == 0
        maintenance.close()


def unindexed(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        (count,) = conn.execute(
            "SELECT (SELECT max(rowid) FROM checks) - last_rowid FROM subject_checks_mark"
        ).fetchone()
        return int(count)
    finally:
        conn.close()


def test_a_lulls_work_stops_when_checks_are_recorded_again(tmp_path: Path) -> None:
    """Indexing in a lull goes in steps and stops as soon as this worker records again (its
    probe) or another does (the checks table grew): run to the end, its steps starved the
    other workers' commits when the load came back."""
    db = tmp_path / "g.db"
    caller = make_caller(db)
    with CheckWriter(db) as writer:
        writer.write([check(n, caller.caller_id) for n in range(1, 2001)])
        maintenance = Maintenance(db)
        answers = iter([False, False, True])  # idle at the start and after a step, then busy
        assert maintenance.run_once(busy=lambda: next(answers, True)) == 2 * LULL_STEP
        assert unindexed(db) == 2000 - 2 * LULL_STEP

        real_step = maintenance.index_subjects

        def step_while_another_worker_records(limit: int = 1_000) -> int:
            done = real_step(limit)
            writer.write([check(5000 + done, caller.caller_id)])  # another worker's commit
            return done

        maintenance.index_subjects = step_while_another_worker_records  # type: ignore[method-assign]
        assert maintenance.run_once(busy=lambda: False) == LULL_STEP
        maintenance.index_subjects = real_step  # type: ignore[method-assign]
        assert maintenance.run_once(busy=lambda: False) == 2000 - 3 * LULL_STEP + 1
        assert maintenance.pending() == 0
        maintenance.close()

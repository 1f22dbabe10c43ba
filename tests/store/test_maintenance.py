"""Upkeep off the commit path: checks are indexed by subject in bulk, and every check of a
subject is found whether it is indexed yet or not."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.store import CheckWriter, Maintenance, Store
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

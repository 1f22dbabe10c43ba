"""The recorder's CheckWriter, and reading checks and feedback back from the Store."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from gateway.model import Caller
from gateway.store import CheckWriter, Store, StoredCheck
from tests.store.helpers import check, execute, feedback, query, run, uscc


def make_caller(path: Path) -> Caller:
    async def scenario() -> Caller:
        async with await Store.open(path) as store:
            caller, _ = await store.create_key("采购平台", "财政厅", ["check", "feedback"])
            return caller

    return run(scenario())


def test_checks_and_feedback_are_written_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    caller = make_caller(path)
    checks = [check(n, caller.caller_id) for n in range(10)]
    checks[3] = check(3, caller.caller_id, matter_code=None, case_ref=None, batch_id="b-1")
    with CheckWriter(path) as writer:
        assert writer.write(checks, []) == []
        fb = [feedback(checks[0].check_id, caller.caller_id)]
        assert writer.write([], fb) == [True]

    async def scenario() -> None:
        async with await Store.open(path) as store:
            for record in checks:
                stored = await store.get_check(record.check_id)
                assert isinstance(stored, StoredCheck)
                # Every column round-trips, the response as the exact bytes sent.
                assert stored == StoredCheck(
                    **{f: getattr(record, f) for f in record.__struct_fields__}
                )
            assert await store.get_check("nope") is None
            assert await store.get_feedback(checks[0].check_id) == fb[0]
            assert await store.get_feedback(checks[1].check_id) is None

            recent = await store.recent_checks(uscc(3), limit=20)
            expected = sorted(
                (c for c in checks if c.uscc == uscc(3)), key=lambda c: c.checked_at, reverse=True
            )
            assert [c.check_id for c in recent] == [c.check_id for c in expected]
            assert len(await store.recent_checks(uscc(3), limit=1)) == 1

    run(scenario())
    assert query(path, "SELECT hit_ids, measures FROM checks LIMIT 1") == [
        ('["e1","e2"]', '[["bid_ban","apply"],["no_fast_track","suspended"]]')
    ]


def test_duplicate_feedback_is_reported_not_written(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    caller = make_caller(path)
    c1, c2, c3 = (check(n, caller.caller_id) for n in range(3))
    first = feedback(c1.check_id, caller.caller_id)
    conflicting = feedback(c1.check_id, caller.caller_id, outcome="已受理", body=b"{}")
    with CheckWriter(path) as writer:
        assert writer.write([c1, c2], [first]) == [True]
        # Same check again (a retry, or a conflict the API answers with 409): not inserted;
        # within one batch only the first of two for the same check goes in.
        results = writer.write(
            [c3],
            [conflicting, feedback(c2.check_id, caller.caller_id), feedback(c2.check_id, 1)],
        )
        assert results == [False, True, False]
    assert query(path, "SELECT outcome, body FROM feedback WHERE check_id = ?", (c1.check_id,)) == [
        ("不予受理", first.body)
    ]
    assert query(path, "SELECT count(*) FROM checks") == [(3,)]


def test_a_failing_batch_writes_nothing_and_the_writer_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    caller = make_caller(path)
    with CheckWriter(path) as writer:
        writer.write([check(0, caller.caller_id)])
        with pytest.raises(sqlite3.IntegrityError):  # a check id written twice
            writer.write([check(1, caller.caller_id), check(0, caller.caller_id)])
        with pytest.raises(sqlite3.IntegrityError):  # feedback on a check that does not exist
            writer.write([check(2, caller.caller_id)], [feedback("missing", caller.caller_id)])
        assert writer.write([check(3, caller.caller_id)]) == []
    assert query(path, "SELECT count(*) FROM checks") == [(2,)]


def test_the_writer_connects_in_its_thread_and_migrates_a_new_file(tmp_path: Path) -> None:
    path = tmp_path / "new" / "gateway.db"
    writer = CheckWriter(path, synchronous="normal")
    assert not path.exists()  # lazy: nothing opened before the first write
    errors: list[BaseException] = []

    def record() -> None:
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

    thread = threading.Thread(target=record)
    thread.start()
    thread.join()
    writer.close()  # from another thread than the one that connected
    assert errors == []
    assert query(path, "SELECT count(*) FROM checks") == [(1,)]
    with pytest.raises(RuntimeError, match="closed"):
        writer.write([check(2, 1)])
    with pytest.raises(ValueError, match="synchronous"):
        CheckWriter(path, synchronous="fast")

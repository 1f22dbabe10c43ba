"""SQLite's subject index in a file of its own: indexing takes no lock a commit of a check
waits for, and the file is derived data (rebuilt when missing, restarted when ahead of
its database)."""

from __future__ import annotations

import doctest
import shutil
import sqlite3
from pathlib import Path

from gateway.store import CheckWriter, Maintenance, Store, subject_index
from tests.store.helpers import check, run, uscc
from tests.store.test_checks import make_caller


def with_checks(db: Path, numbers: range, caller_id: int | None = None) -> int:
    """Record the checks ``numbers`` in the SQLite store ``db`` (created if new); the caller."""
    if caller_id is None:
        caller_id = make_caller(db).caller_id
    with CheckWriter(db) as writer:
        writer.write([check(n, caller_id) for n in numbers])
    return caller_id


def indexed(db: Path) -> int:
    conn = sqlite3.connect(subject_index.path_for(db))
    try:
        return int(conn.execute("SELECT count(*) FROM subject_checks").fetchone()[0])
    finally:
        conn.close()


def recent(db: Path, code: str) -> list[str]:
    async def scenario() -> list[str]:
        async with await Store.open(db) as store:
            return [c.check_id for c in await store.recent_checks(code, limit=100)]

    return run(scenario())


def test_indexing_goes_on_while_another_connection_holds_the_databases_write_lock(
    tmp_path: Path,
) -> None:
    db = tmp_path / "g.db"
    with_checks(db, range(1, 301))
    other = sqlite3.connect(db, isolation_level=None)
    maintenance = Maintenance(db, busy_timeout_ms=200)
    try:
        other.execute("BEGIN IMMEDIATE")  # a commit of the recorder, an import, ...
        assert maintenance.index_subjects(1_000) == 300
        other.execute("COMMIT")
    finally:
        maintenance.close()
        other.close()
    assert indexed(db) == 300


def test_a_missing_index_is_built_again_from_the_checks(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    with_checks(db, range(1, 71))
    maintenance = Maintenance(db)
    maintenance.run_once()
    maintenance.close()
    expected = recent(db, uscc(1))
    assert len(expected) == 10  # every seventh check is the subject's
    for suffix in ("", "-wal", "-shm"):
        Path(f"{subject_index.path_for(db)}{suffix}").unlink(missing_ok=True)

    assert recent(db, uscc(1)) == expected  # read from the checks meanwhile
    maintenance = Maintenance(db)
    assert maintenance.pending() == 70
    assert maintenance.run_once() == 70
    maintenance.close()
    assert indexed(db) == 70
    assert recent(db, uscc(1)) == expected


def test_an_index_ahead_of_its_database_starts_again(tmp_path: Path) -> None:
    """The database restored from a copy older than its index: the checks the index holds
    past the database's last are not answered, and it is rebuilt from the database."""
    db = tmp_path / "g.db"
    caller_id = with_checks(db, range(1, 41))
    older = tmp_path / "older.db"
    source = sqlite3.connect(db)
    source.execute("VACUUM INTO ?", (str(older),))  # a backup with 40 checks
    source.close()
    with_checks(db, range(41, 101), caller_id)
    maintenance = Maintenance(db)
    maintenance.run_once()
    maintenance.close()
    assert indexed(db) == 100

    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(older, db)  # restored; the index stays as it was
    maintenance = Maintenance(db)
    assert maintenance.run_once() == 40
    maintenance.close()
    assert indexed(db) == 40
    assert len(recent(db, uscc(1))) == len([n for n in range(1, 41) if n % 7 == 1])


def test_doctests() -> None:
    assert doctest.testmod(subject_index).failed == 0

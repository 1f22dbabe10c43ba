"""``copy-store``: an embedded SQLite store copied into PostgreSQL, verified by counts and
checksums, answering as the SQLite store did; refused into a database with data; all or
nothing."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from gateway import recordframes
from gateway.app import create_app
from gateway.model import Grade
from gateway.settings import Settings
from gateway.store import CheckWriter, Maintenance, Store, subject_index
from gateway.store.pg import PgStore
from gateway.store.pg import copy as pg_copy
from gateway.store.pg.copy import CopyError, copy_store
from gateway.store.pg.maintenance import PgMaintenance
from tests.fixtures import RESTRICTED, Seeded, run_gateway, seed_database
from tests.store.helpers import check, feedback, fetch, run
from tests.test_recordlog import crash_after_writing

CODES = [f"91{n:016d}" for n in range(1, 8)]


def populated(tmp_path: Path) -> Seeded:
    """Every table with rows: keys, entries through their lifecycle, grades, checks and
    feedback, indexed and rolled up by the upkeep, a control generation, the audit log."""
    seeded = seed_database(tmp_path / "gateway.db")

    async def more(store: Store) -> int:
        caller = (await store.list_keys())[0]["caller_id"]
        await store.put_grade(CODES[0], Grade("excellent", "评价", date(2026, 9, 1)), "test")
        await store.bump_control("catalog", "v2", "test", audit_action="catalog.reload")
        return int(caller)

    caller_id = seeded.run(more)
    with CheckWriter(seeded.path) as writer:
        checks = [check(n, caller_id, response=bytes(range(n % 256))) for n in range(1, 120)]
        writer.write(checks, [feedback(checks[n].check_id, caller_id) for n in range(40)])
    maintenance = Maintenance(seeded.path)
    maintenance.run_once()
    maintenance.close()
    return seeded


async def answers(store: Store | PgStore) -> dict[str, Any]:
    """What the stores answer for everything copied (ids and times as stored)."""
    usccs = [r[0] for r in await fetch(store, "SELECT uscc FROM entries ORDER BY uscc")]
    entry_ids = [r[0] for r in await fetch(store, "SELECT entry_id FROM entries ORDER BY 1")]
    return msgspec.to_builtins(
        {
            "subjects": await store.subjects([*usccs, *CODES]),
            "history": [await store.entry_history(e) for e in entry_ids],
            "keys": sorted(await store.list_keys(), key=lambda k: k["key_id"]),
            "in_force": sorted((await store.keys_in_force()).items()),
            "audit": await store.audit(limit=1000),
            "changes": await store.changes_since(0, limit=1000),
            "control": await store.control_generation("catalog"),
            "grade": await store.get_grade(CODES[0]),
        }
    )


def test_a_copy_answers_as_the_sqlite_store_did_and_continues_its_sequences(
    tmp_path: Path, postgres_url: str
) -> None:
    seeded = populated(tmp_path)
    copied = run(copy_store(seeded.path, postgres_url))
    rows = {table.table: table.rows for table in copied}
    assert [table.table for table in copied] == [table for table, _ in pg_copy.TABLES]
    for table in ("callers", "api_keys", "entries", "entry_history", "grades", "changes"):
        assert rows[table] > 0, table
    assert rows["checks"] == 119
    assert rows["feedback"] == 40
    assert rows["subject_checks"] == 119
    assert rows["loop_daily"] > 0
    assert rows["audit_log"] > 0

    async def compare() -> None:
        async with await Store.open(seeded.path) as lite, await PgStore.open(postgres_url) as pg:
            assert await answers(pg) == await answers(lite)
            # The upkeep's watermarks and the checks' row numbers came along.
            marks = "SELECT id, last_rowid FROM subject_checks_mark"
            assert await fetch(pg, marks) == await fetch(lite, marks)
            rowids = "SELECT check_id, rowid FROM checks ORDER BY check_id"
            assert await fetch(pg, rowids) == await fetch(lite, rowids)
            # Identities go on after the largest copied value.
            last_seq = await pg.last_change_seq()
            callers = await fetch(pg, "SELECT max(caller_id) FROM callers")
            caller, _ = await pg.create_key("新系统", "新部门", ["check"])
            assert caller.caller_id == callers[0][0] + 1
            await pg.put_grade(CODES[1], Grade("good"), "after the copy")
            assert await pg.last_change_seq() == last_seq + 1

    run(compare())


def test_a_store_whose_subject_index_is_gone_is_copied_and_indexed_again(
    tmp_path: Path, postgres_url: str
) -> None:
    """SQLite's subject index is a file of its own, derived from the checks: without it the
    copy leaves the target's watermark at 0, and the target's upkeep indexes every check."""
    seeded = populated(tmp_path)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{subject_index.path_for(seeded.path)}{suffix}").unlink(missing_ok=True)
    copied = [table.table for table in run(copy_store(seeded.path, postgres_url))]
    assert "checks" in copied
    assert "subject_checks" not in copied

    async def indexed() -> list[tuple[Any, ...]]:
        async with await PgStore.open(postgres_url) as pg:
            assert await fetch(pg, "SELECT last_rowid FROM subject_checks_mark") == [(0,)]
            maintenance = PgMaintenance(postgres_url)
            try:
                await maintenance.run_once()
            finally:
                await maintenance.close()
            return await fetch(pg, "SELECT count(*) FROM subject_checks")

    assert run(indexed()) == [(119,)]


def test_a_copy_into_a_database_with_data_is_refused(tmp_path: Path, postgres_url: str) -> None:
    seeded = populated(tmp_path)
    run(copy_store(seeded.path, postgres_url))
    with pytest.raises(CopyError, match="holds rows"):
        run(copy_store(seeded.path, postgres_url))


def test_a_store_with_records_left_in_a_killed_workers_log_is_not_copied(
    tmp_path: Path, postgres_url: str
) -> None:
    """They may be missing from the SQLite file (a power cut): the copy would lose them."""
    seeded = populated(tmp_path)
    with CheckWriter(seeded.path) as writer:
        store_id = writer.store_identity()
    records = recordframes.directory_for(seeded.path)
    crash_after_writing(records, [[check(9001, 1)]], store_id)
    with pytest.raises(CopyError, match=r"^1 records in .* recover-records"):
        run(copy_store(seeded.path, postgres_url))

    with TestClient(create_app(Settings(db=str(seeded.path)))):
        pass  # a gateway started and stopped: it recovers them and closes its slot
    assert recordframes.unrecovered(records) == 0
    assert [table.table for table in run(copy_store(seeded.path, postgres_url))]


def test_a_copy_that_fails_leaves_the_target_empty(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded = populated(tmp_path)
    copy_table = pg_copy._copy_table

    async def fails_at_checks(source: Any, conn: Any, table: str, order: str) -> Any:
        if table == "checks":
            raise CopyError("checks: simulated failure")
        return await copy_table(source, conn, table, order)

    monkeypatch.setattr(pg_copy, "_copy_table", fails_at_checks)
    with pytest.raises(CopyError, match="simulated"):
        run(copy_store(seeded.path, postgres_url))

    async def counts() -> list[int]:
        async with await PgStore.open(postgres_url) as pg:
            return [
                (await fetch(pg, f"SELECT count(*) FROM {table}"))[0][0]
                for table in ("callers", "entries", "changes", "audit_log")
            ]

    assert run(counts()) == [0, 0, 0, 0]


def test_a_checksum_mismatch_rolls_the_copy_back(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The verification reads back what was written: a value changed on the way fails it."""
    seeded = populated(tmp_path)
    convert = pg_copy._convert

    def corrupting(data_type: str) -> Any:
        inner = convert(data_type)
        if data_type != "bytea":
            return inner
        return lambda v: None if v is None else bytes(v) + b"!"

    monkeypatch.setattr(pg_copy, "_convert", corrupting)
    with pytest.raises(CopyError, match="checksums"):
        run(copy_store(seeded.path, postgres_url))


def test_the_copy_store_command_as_a_user_runs_it(tmp_path: Path, postgres_url: str) -> None:
    seeded = populated(tmp_path)
    done = run_gateway(seeded.path, "copy-store", "--to", postgres_url)
    assert done.returncode == 0, done.stderr
    assert "counts and checksums verified" in done.stdout
    assert done.stdout.count("verified") == len(pg_copy.TABLES) + 1
    again = run_gateway(seeded.path, "copy-store", "--to", postgres_url)
    assert again.returncode == 1
    assert "holds rows" in again.stderr
    assert RESTRICTED not in again.stderr
    wrong = run_gateway(seeded.path, "copy-store", "--to", str(tmp_path / "other.db"))
    assert wrong.returncode == 2

"""Schema, migrations and connection settings, on real files."""

from __future__ import annotations

import multiprocessing
import sqlite3
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from gateway.store import SCHEMA_VERSION, SchemaError, Store, schema
from tests.store import workers
from tests.store.helpers import execute, query, run


def test_open_creates_the_directory_and_applies_every_migration_once(tmp_path: Path) -> None:
    path = tmp_path / "var" / "deep" / "gateway.db"

    async def scenario() -> None:
        async with await Store.open(path) as store:
            assert store.schema_version == SCHEMA_VERSION

    run(scenario())
    first = query(path, "SELECT version, applied_at FROM schema_migrations ORDER BY version")
    assert [v for v, _ in first] == [v for v, _ in schema.MIGRATIONS]

    run(scenario())  # reopening changes nothing
    assert query(path, "SELECT version, applied_at FROM schema_migrations") == first


def test_the_file_is_in_wal_mode_and_connections_have_their_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"

    async def scenario() -> None:
        store = await Store.open(path, busy_timeout_ms=7000)
        try:
            for db in (store._writer, store._reader):
                assert list(await db.execute_fetchall("PRAGMA foreign_keys")) == [(1,)]
                assert list(await db.execute_fetchall("PRAGMA busy_timeout")) == [(7000,)]
                assert list(await db.execute_fetchall("PRAGMA synchronous")) == [(2,)]  # FULL
            assert list(await store._reader.execute_fetchall("PRAGMA query_only")) == [(1,)]
        finally:
            await store.close()

    run(scenario())
    assert query(path, "PRAGMA journal_mode") == [("wal",)]


def test_two_processes_opening_a_new_file_at_once_both_succeed(tmp_path: Path) -> None:
    path = str(tmp_path / "gateway.db")
    start_at = time.time() + 1.0
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=4, mp_context=context) as pool:
        versions = list(pool.map(workers.open_store, [path] * 4, [start_at] * 4))
    assert versions == [SCHEMA_VERSION] * 4
    assert query(Path(path), "SELECT count(*) FROM schema_migrations") == [
        (len(schema.MIGRATIONS),)
    ]


def test_a_new_migration_is_applied_on_top_and_recorded(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    assert schema.prepare(str(path)) == SCHEMA_VERSION
    later = (
        *schema.MIGRATIONS,
        (SCHEMA_VERSION + 1, "CREATE TABLE extra (x TEXT);\nCREATE INDEX extra_x ON extra (x);"),
    )
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert schema.migrate(conn, later) == SCHEMA_VERSION + 1
        assert schema.migrate(conn, later) == SCHEMA_VERSION + 1  # idempotent
    finally:
        conn.close()
    assert query(path, "SELECT count(*) FROM extra") == [(0,)]

    # Code that knows fewer migrations refuses the newer file rather than misuse it.
    with pytest.raises(SchemaError, match="newer than this code"):
        run(Store.open(path))


def test_a_failing_migration_leaves_the_schema_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    schema.prepare(str(path))
    broken = (
        *schema.MIGRATIONS,
        (SCHEMA_VERSION + 1, "CREATE TABLE half (x TEXT);\nINSERT INTO nowhere VALUES (1);"),
    )
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        with pytest.raises(sqlite3.OperationalError, match="nowhere"):
            schema.migrate(conn, broken)
        assert schema.current_version(conn) == SCHEMA_VERSION
        assert not conn.in_transaction
    finally:
        conn.close()
    assert query(path, "SELECT name FROM sqlite_master WHERE name = 'half'") == []


def test_migration_versions_must_increase(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    try:
        with pytest.raises(ValueError, match="strictly increasing"):
            schema.migrate(conn, ((2, "SELECT 1;"), (1, "SELECT 1;")))
    finally:
        conn.close()


def test_the_shipped_migrations_are_ordered() -> None:
    versions = [v for v, _ in schema.MIGRATIONS]
    assert versions == list(range(1, len(versions) + 1))


def test_split_statements_keeps_triggers_whole_and_drops_comments() -> None:
    script = """
    -- a comment
    CREATE TABLE t (x TEXT); -- trailing
    CREATE TRIGGER t_no_update BEFORE UPDATE ON t
    BEGIN SELECT RAISE(ABORT, 'no; never'); END;
    """
    statements = schema.split_statements(script)
    assert len(statements) == 2
    assert statements[1].startswith("CREATE TRIGGER")
    assert statements[1].endswith("END;")
    with pytest.raises(ValueError, match="incomplete"):
        schema.split_statements("CREATE TABLE t (x TEXT)")


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        run(Store.open(tmp_path / "a.db", synchronous="SOMETIMES"))
    with pytest.raises(ValueError, match="busy_timeout"):
        run(Store.open(tmp_path / "b.db", busy_timeout_ms=-1))


def test_a_store_is_usable_with_explicit_close(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await Store.open(tmp_path / "gateway.db")
        assert await store.last_change_seq() == 0
        await store.close()

    run(scenario())
    execute(tmp_path / "gateway.db", "PRAGMA user_version = 0")  # the file is not left locked

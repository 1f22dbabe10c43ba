"""The PostgreSQL schema (gateway.store.pg.migrations) on a real server: applied once, by
one of several nodes starting together, equal to the SQLite schema, append-only where
SQLite's is, its logs in commit order; and ``python -m gateway migrate``'s function."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gateway.cli_migrate import migrate_command, run_migrate
from gateway.store import SCHEMA_VERSION, SchemaError, Store, schema, subject_index
from gateway.store.pg import migrations as pg
from gateway.store.pg import upgrade
from tests.fixtures import run_gateway
from tests.store.helpers import run

ROOT = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def connect(url: str) -> AsyncIterator[Any]:
    conn = await asyncpg.connect(url)
    try:
        yield conn
    finally:
        await conn.close()


def fetch(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    async def go() -> list[tuple[Any, ...]]:
        async with connect(url) as conn:
            return [tuple(r) for r in await conn.fetch(sql, *args)]

    return run(go())


def execute(url: str, sql: str, *args: Any) -> None:
    async def go() -> None:
        async with connect(url) as conn:
            await conn.execute(sql, *args)

    run(go())


def migrate(url: str, migrations: tuple[tuple[int, str], ...] = pg.MIGRATIONS) -> int:
    return run(pg.migrate(url, migrations))


# --- applying ---------------------------------------------------------------------------


def test_the_versions_are_sqlites() -> None:
    assert [v for v, _ in pg.MIGRATIONS] == [v for v, _ in schema.MIGRATIONS]
    assert pg.LATEST == SCHEMA_VERSION


def test_an_empty_database_is_migrated_to_the_latest_version(postgres_url: str) -> None:
    assert migrate(postgres_url) == SCHEMA_VERSION
    rows = fetch(postgres_url, "SELECT version FROM schema_migrations ORDER BY version")
    assert [v for (v,) in rows] == [v for v, _ in schema.MIGRATIONS]
    assert fetch(postgres_url, "SELECT source, last_rowid FROM loop_marks ORDER BY source") == [
        ("checks", 0),
        ("feedback", 0),
    ]


def test_migrating_again_does_nothing(postgres_url: str) -> None:
    migrate(postgres_url)
    first = fetch(postgres_url, "SELECT version, applied_at FROM schema_migrations ORDER BY 1")

    async def again() -> tuple[int, tuple[int, ...]]:
        async with connect(postgres_url) as conn:
            return await upgrade(conn)

    assert run(again()) == (SCHEMA_VERSION, ())
    assert migrate(postgres_url) == SCHEMA_VERSION
    assert fetch(postgres_url, "SELECT version, applied_at FROM schema_migrations ORDER BY 1") == (
        first
    )


_MIGRATE_ONCE = """
import asyncio, json, sys
import asyncpg
from gateway.store.pg import upgrade

async def main():
    conn = await asyncpg.connect(sys.argv[1])
    try:
        print("ready", flush=True)
        sys.stdin.readline()
        version, applied = await upgrade(conn)
    finally:
        await conn.close()
    print(json.dumps([version, list(applied)]))

asyncio.run(main())
"""


def test_four_nodes_starting_at_once_apply_each_version_exactly_once(postgres_url: str) -> None:
    # Each process connects, says so, and migrates when told: all four at the same moment.
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _MIGRATE_ONCE, postgres_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for _ in range(4)
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready", process.communicate()[1]
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        outputs = [process.communicate(timeout=60) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert [p.returncode for p in processes] == [0] * 4, [err for _, err in outputs]
    results = [json.loads(out) for out, _ in outputs]
    assert [version for version, _ in results] == [SCHEMA_VERSION] * 4
    # Between them they applied every version, none twice.
    applied = sorted(v for _, done in results for v in done)
    assert applied == [v for v, _ in pg.MIGRATIONS]
    recorded = fetch(postgres_url, "SELECT version FROM schema_migrations ORDER BY version")
    assert recorded == [(v,) for v, _ in pg.MIGRATIONS]


def test_a_database_newer_than_the_code_is_refused(postgres_url: str) -> None:
    migrate(postgres_url)
    execute(
        postgres_url,
        "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, 'later')",
        SCHEMA_VERSION + 1,
    )
    with pytest.raises(
        SchemaError,
        match=rf"version {SCHEMA_VERSION + 1}, newer than this code knows \({SCHEMA_VERSION}\); "
        "upgrade the gateway",
    ):
        migrate(postgres_url)


def test_a_new_migration_is_applied_on_top_and_recorded(postgres_url: str) -> None:
    migrate(postgres_url)
    later = (
        *pg.MIGRATIONS,
        (SCHEMA_VERSION + 1, "CREATE TABLE extra (x text);\nCREATE INDEX extra_x ON extra (x);"),
    )
    assert migrate(postgres_url, later) == SCHEMA_VERSION + 1
    assert migrate(postgres_url, later) == SCHEMA_VERSION + 1
    assert fetch(postgres_url, "SELECT count(*) FROM extra") == [(0,)]
    # Code that knows fewer migrations refuses the newer database rather than misuse it.
    with pytest.raises(SchemaError, match="newer than this code"):
        migrate(postgres_url)


def test_a_failing_migration_leaves_the_schema_as_it_was(postgres_url: str) -> None:
    migrate(postgres_url)
    broken = (
        *pg.MIGRATIONS,
        (SCHEMA_VERSION + 1, "CREATE TABLE half (x text);\nINSERT INTO nowhere VALUES (1);"),
    )
    with pytest.raises(asyncpg.UndefinedTableError, match="nowhere"):
        migrate(postgres_url, broken)
    assert fetch(postgres_url, "SELECT max(version) FROM schema_migrations") == [(SCHEMA_VERSION,)]
    assert fetch(postgres_url, "SELECT to_regclass('half') IS NULL") == [(True,)]


def test_migration_versions_must_increase(postgres_url: str) -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        migrate(postgres_url, ((2, "SELECT 1;"), (1, "SELECT 1;")))


# --- the same schema as SQLite's ---------------------------------------------------------

#: Calendar dates: ``date`` on PostgreSQL, ISO text on SQLite.
DATE_COLUMNS = {
    ("entries", "listed_on"),
    ("entries", "expires_on"),
    ("grades", "as_of"),
    ("grade_history", "as_of"),
    ("subject_checks", "day"),
    ("loop_daily", "day"),
}
PG_TYPES = {"INTEGER": "bigint", "TEXT": "text", "REAL": "double precision", "BLOB": "bytea"}
#: SQLite's implicit rowid, a column on PostgreSQL where the code reads it.
PG_ONLY_COLUMNS = {("checks", "rowid"), ("feedback", "rowid")}
#: Rowid aliases (``INTEGER PRIMARY KEY``) whose value the code always gives itself.
NOT_SEQUENCES = {("schema_migrations", "version"), ("subject_checks_mark", "id")}
#: What PostgreSQL adds: TRUNCATE refused where DELETE is, the lock triggers, and the
#: notification that wakes the followers.
PG_ONLY_TRIGGERS = {
    ("entry_history", "entry_history_no_truncate"),
    ("grade_history", "grade_history_no_truncate"),
    ("audit_log", "audit_log_no_truncate"),
    ("changes", "changes_lock"),
    ("changes", "changes_notify"),
    ("audit_log", "audit_log_lock"),
    ("checks", "checks_share_recording"),
    ("feedback", "feedback_share_recording"),
}


def sqlite_schema(path: Path) -> dict[str, Any]:
    async def open_store() -> None:
        async with await Store.open(path) as store:
            assert store.schema_version == SCHEMA_VERSION

    run(open_store())
    conn = sqlite3.connect(path)
    conn.execute(*subject_index.attach_sql(path))  # its tables are in a file of their own
    master = "(SELECT * FROM main.sqlite_master UNION ALL SELECT * FROM subjects.sqlite_master)"
    try:
        tables = [
            r[0]
            for r in conn.execute(
                f"SELECT name FROM {master} WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        columns: dict[tuple[str, str], tuple[str, bool, str | None]] = {}
        keys: set[tuple[str, str, tuple[str, ...], str | None, tuple[str, ...]]] = set()
        indexes: dict[str, tuple[str, tuple[str, ...], bool]] = {}
        sequences: set[tuple[str, str]] = set()
        for table in tables:
            info = conn.execute(f"PRAGMA table_info({table})").fetchall()
            for _, name, kind, notnull, default, pk in info:
                columns[table, name] = (PG_TYPES[kind], bool(notnull or pk), default)
            primary = tuple(name for *_, name in sorted((r[5], r[1]) for r in info if r[5]))
            if primary:
                keys.add((table, "p", primary, None, ()))
            without_rowid = "WITHOUT ROWID" in conn.execute(
                f"SELECT sql FROM {master} WHERE name = ?", (table,)
            ).fetchone()[0].upper().replace("\n", " ")
            rowid_alias = len(primary) == 1 and columns[table, primary[0]][0] == "bigint"
            if rowid_alias and not without_rowid:
                sequences.add((table, primary[0]))
            for _, name, _unique, origin, partial in conn.execute(
                f"PRAGMA index_list({table})"
            ).fetchall():
                cols = tuple(r[2] for r in conn.execute(f"PRAGMA index_info({name})"))
                if origin == "u":
                    keys.add((table, "u", cols, None, ()))
                elif origin == "c":
                    indexes[name] = (table, cols, bool(partial))
            foreign: dict[int, list[tuple[int, str, str, str]]] = {}
            for key_id, seq, parent, child_col, parent_col, *_ in conn.execute(
                f"PRAGMA foreign_key_list({table})"
            ).fetchall():
                foreign.setdefault(key_id, []).append((seq, parent, child_col, parent_col))
            for parts in foreign.values():
                parts.sort()
                cols, refcols = tuple(p[2] for p in parts), tuple(p[3] for p in parts)
                keys.add((table, "f", cols, parts[0][1], refcols))
        triggers = {
            (r[1], r[0])
            for r in conn.execute("SELECT name, tbl_name FROM sqlite_master WHERE type = 'trigger'")
        }
    finally:
        conn.close()
    return {
        "tables": set(tables),
        "columns": columns,
        "keys": keys,
        "indexes": indexes,
        "sequences": sequences,
        "triggers": triggers,
    }


_PG_COLUMNS = """
SELECT table_name, column_name, data_type, is_nullable = 'NO', column_default,
       is_identity = 'YES', identity_generation, collation_name
FROM information_schema.columns WHERE table_schema = current_schema()
"""
_PG_CONSTRAINTS = """
SELECT c.conrelid::regclass::text, c.contype::text,
       ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY AS k (num, i)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.num ORDER BY k.i),
       nullif(c.confrelid, 0)::regclass::text,
       ARRAY(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY AS k (num, i)
             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.num ORDER BY k.i)
FROM pg_constraint c
WHERE c.connamespace = current_schema()::regnamespace AND c.contype IN ('p', 'u', 'f')
"""
_PG_INDEXES = """
SELECT i.indexname, i.tablename,
       ARRAY(SELECT a.attname FROM unnest(x.indkey) WITH ORDINALITY AS k (num, n)
             JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.num ORDER BY k.n),
       x.indpred IS NOT NULL
FROM pg_indexes i JOIN pg_index x ON x.indexrelid = to_regclass(i.indexname)
WHERE i.schemaname = current_schema()
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
"""
_PG_TRIGGERS = """
SELECT t.tgrelid::regclass::text, t.tgname FROM pg_trigger t
JOIN pg_class r ON r.oid = t.tgrelid
WHERE NOT t.tgisinternal AND r.relnamespace = current_schema()::regnamespace
"""


def _pg_default(default: str | None) -> str | None:
    """A column default as SQLite spells it (``''::text`` → ``''``)."""
    return None if default is None else default.removesuffix("::text")


def test_the_schema_is_sqlites(postgres_url: str, tmp_path: Path) -> None:
    """Tables, columns (type, NOT NULL, default), keys, indexes, sequences and triggers:
    each as on a SQLite store migrated by Store.open, but for the documented differences."""
    lite = sqlite_schema(tmp_path / "gateway.db")
    migrate(postgres_url)

    tables = fetch(
        postgres_url,
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
    )
    assert {t for (t,) in tables} == lite["tables"]

    rows = fetch(postgres_url, _PG_COLUMNS)
    columns = {
        (t, c): (kind, notnull, _pg_default(default)) for t, c, kind, notnull, default, *_ in rows
    }
    expected = {
        key: ("date" if key in DATE_COLUMNS else kind, notnull, default)
        for key, (kind, notnull, default) in lite["columns"].items()
    }
    assert {k: v for k, v in columns.items() if k not in PG_ONLY_COLUMNS} == expected
    sequences = {(t, c): generation for t, c, *_, identity, generation, _ in rows if identity}
    assert set(sequences) == (lite["sequences"] - NOT_SEQUENCES) | PG_ONLY_COLUMNS
    # What the order of the logs and the watermarks rest on is never given by a writer.
    for key in [("changes", "seq"), ("audit_log", "id"), *PG_ONLY_COLUMNS]:
        assert sequences[key] == "ALWAYS", key
    # Every text column compares byte by byte, as SQLite's BINARY and Python's str do.
    assert {
        (t, c) for t, c, kind, *_, collation in rows if kind == "text" and collation != "C"
    } == (set())

    keys = {
        (t, kind, tuple(cols), ref, tuple(refcols))
        for t, kind, cols, ref, refcols in fetch(postgres_url, _PG_CONSTRAINTS)
    }
    extra_keys = {(t, "u", (c,), None, ()) for t, c in PG_ONLY_COLUMNS}
    assert keys == lite["keys"] | extra_keys

    indexes = {
        name: (t, tuple(cols), partial)
        for name, t, cols, partial in fetch(postgres_url, _PG_INDEXES)
    }
    assert indexes == lite["indexes"]

    triggers = set(fetch(postgres_url, _PG_TRIGGERS))
    assert triggers == lite["triggers"] | PG_ONLY_TRIGGERS


# --- append-only ------------------------------------------------------------------------

_ONE_OF_EACH = """
INSERT INTO callers (name, department, created_at)
    VALUES ('审批系统', '政务中心', '2026-11-21T15:59:00.000+08:00');
INSERT INTO entries (entry_id, uscc, list_type, listed_on, created_at, updated_at)
    VALUES ('e1', '91110000600037341L', 'court_defaulter', '2026-03-01', 't', 't');
INSERT INTO entry_history (entry_id, status, changed_at, actor) VALUES ('e1', 'active', 't', 'a');
INSERT INTO grade_history (uscc, value, changed_at, actor)
    VALUES ('91110000600037341L', 'A', 't', 'a');
INSERT INTO changes (uscc, kind, ref, at, actor)
    VALUES ('91110000600037341L', 'entry', 'e1', 't', 'a');
INSERT INTO checks (check_id, caller_id, matter, uscc, verdict, hit_ids, measures, snapshot_version,
                    catalog_version, checked_at, latency_us, response)
    VALUES ('c1', 1, 'bidding', '91110000600037341L', 'restricted', '["e1"]', '[]', 1, '2026.11.0',
            '2026-11-21T15:59:00.123+08:00', 180, '\\x7b7d');
INSERT INTO feedback (check_id, caller_id, measures, received_at, body)
    VALUES ('c1', 1, '[]', '2026-11-21T16:20:01.000+08:00', '\\x7b7d');
INSERT INTO audit_log (at, actor, action, target, after)
    VALUES ('t', 'a', 'key.create', 'k1', '{}');
"""

#: What SQLite's triggers refuse, and PostgreSQL's (TRUNCATE where DELETE is refused).
REFUSED = [
    ("audit_log", "audit_log is append-only", ("UPDATE", "DELETE", "TRUNCATE")),
    ("entry_history", "entry_history is append-only", ("UPDATE", "DELETE", "TRUNCATE")),
    ("grade_history", "grade_history is append-only", ("UPDATE", "DELETE", "TRUNCATE")),
    ("changes", "changes is append-only", ("UPDATE",)),
    ("checks", "checks are never updated", ("UPDATE",)),
    ("feedback", "feedback is never updated", ("UPDATE",)),
]
_STATEMENTS = {
    "UPDATE": "UPDATE {} SET actor = actor",
    "DELETE": "DELETE FROM {}",
    "TRUNCATE": "TRUNCATE {} CASCADE",
}


@pytest.mark.parametrize(("table", "message", "refused"), REFUSED, ids=[r[0] for r in REFUSED])
def test_append_only_tables_refuse_changes(
    postgres_url: str, table: str, message: str, refused: tuple[str, ...]
) -> None:
    migrate(postgres_url)

    async def scenario() -> None:
        async with connect(postgres_url) as conn:
            await conn.execute(_ONE_OF_EACH)
            column = {"checks": "verdict", "feedback": "outcome"}.get(table, "actor")
            for operation in refused:
                statement = _STATEMENTS[operation].format(table).replace("actor", column)
                with pytest.raises(asyncpg.RestrictViolationError, match=message):
                    await conn.execute(statement)
            assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 1

    run(scenario())


def test_the_audit_log_keeps_its_lines(postgres_url: str) -> None:
    """The audit log, in particular: UPDATE and DELETE refused, line by line and whole."""
    migrate(postgres_url)

    async def scenario() -> None:
        async with connect(postgres_url) as conn:
            await conn.execute(_ONE_OF_EACH)
            for statement in (
                "UPDATE audit_log SET after = '{\"forged\": true}' WHERE id = 1",
                "DELETE FROM audit_log WHERE id = 1",
                "DELETE FROM audit_log",
            ):
                with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="append-only"):
                    await conn.execute(statement)
            assert await conn.fetch("SELECT id, action, after FROM audit_log") == [
                (1, "key.create", "{}")
            ]

    run(scenario())


# --- order of the logs and watermarks ---------------------------------------------------

_CHANGE = "INSERT INTO changes (uscc, kind, ref, at, actor) VALUES ('u', 'entry', $1, 't', 'a')"
_CHECK = (
    "INSERT INTO checks (check_id, caller_id, matter, uscc, verdict, hit_ids, measures, "
    "snapshot_version, catalog_version, checked_at, latency_us, response) VALUES "
    "($1, 1, 'bidding', 'u', 'clear', '[]', '[]', 1, 'c', '2026-11-21T15:59:00+08:00', 1, '')"
)


async def _pending(task: asyncio.Task[Any]) -> bool:
    """Whether ``task`` is still waiting a moment from now."""
    await asyncio.sleep(0.3)
    return not task.done()


def test_change_log_seqs_are_in_commit_order(postgres_url: str) -> None:
    """A second writer of the change log waits for the first to commit, so no reader that
    has seen a seq ever sees a smaller one appear (as on SQLite, where writers take turns)."""
    migrate(postgres_url)

    async def scenario() -> None:
        async with connect(postgres_url) as a, connect(postgres_url) as b:
            first = a.transaction()
            await first.start()
            await a.execute(_CHANGE, "from-a")
            second = asyncio.ensure_future(b.fetchval(f"{_CHANGE} RETURNING seq", "from-b"))
            assert await _pending(second)  # b waits for a's commit,
            last = "SELECT pg_sequence_last_value(pg_get_serial_sequence('changes', 'seq'))"
            assert await a.fetchval(last) == 1  # before drawing its seq
            await first.commit()
            assert await asyncio.wait_for(second, 10) == 2
            rows = await a.fetch("SELECT seq, ref FROM changes ORDER BY seq")
            assert [tuple(r) for r in rows] == [(1, "from-a"), (2, "from-b")]
            # The audit log takes the same lock.
            async with a.transaction():
                await a.execute(
                    "INSERT INTO audit_log (at, actor, action, target) VALUES ('t', 'a', 'x', 'y')"
                )
                line = asyncio.ensure_future(b.execute(_CHANGE, "after-audit"))
                assert await _pending(line)
            await asyncio.wait_for(line, 10)

    run(scenario())


def test_recorders_share_and_the_committed_rowid_waits_for_them(postgres_url: str) -> None:
    """Two recorders insert checks at once without waiting for each other; the highest
    rowid a watermark may move to waits until both have committed, so no check below it
    can still appear."""
    migrate(postgres_url)
    execute(
        postgres_url, "INSERT INTO callers (name, department, created_at) VALUES ('c', 'd', 't')"
    )

    async def scenario() -> None:
        async with (
            connect(postgres_url) as a,
            connect(postgres_url) as b,
            connect(postgres_url) as upkeep,
        ):
            assert await upkeep.fetchval("SELECT gateway_committed_rowid('checks')") == 0
            ta, tb = a.transaction(), b.transaction()
            await ta.start()
            await tb.start()
            await asyncio.wait_for(a.execute(_CHECK, "c-a"), 2)  # rowid 1
            await asyncio.wait_for(b.execute(_CHECK, "c-b"), 2)  # rowid 2: no wait for a
            horizon = asyncio.ensure_future(
                upkeep.fetchval("SELECT gateway_committed_rowid('checks')")
            )
            assert await _pending(horizon)
            await tb.commit()  # rowid 2 committed, 1 not yet: no answer yet
            assert await _pending(horizon)
            await ta.commit()
            assert await asyncio.wait_for(horizon, 10) == 2
            # Only with a snapshot taken after the lock.
            async with upkeep.transaction(isolation="repeatable_read"):
                with pytest.raises(asyncpg.RaiseError, match="needs READ COMMITTED"):
                    await upkeep.fetchval("SELECT gateway_committed_rowid('feedback')")
            # The lock is released on every path: a recorder is not held up afterwards.
            await asyncio.wait_for(a.execute(_CHECK, "c-c"), 2)

    run(scenario())


# --- python -m gateway migrate ------------------------------------------------------------

ALL = ", ".join(str(v) for v, _ in schema.MIGRATIONS)


def test_run_migrate_on_postgresql(postgres_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(run_migrate(postgres_url)) == f"schema at version {SCHEMA_VERSION} (applied: {ALL})"
    short = postgres_url.replace("postgresql://", "postgres://", 1)
    assert run(run_migrate(short)) == f"schema at version {SCHEMA_VERSION} (applied: none)"

    execute(
        postgres_url,
        "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, 'later')",
        SCHEMA_VERSION + 1,
    )
    assert migrate_command(postgres_url) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "newer than this code knows" in err
    assert "postgres@" not in err


def test_run_migrate_on_sqlite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "var" / "gateway.db")
    assert run(run_migrate(path)) == f"schema at version {SCHEMA_VERSION} (applied: {ALL})"
    assert migrate_command(path) == 0
    assert capsys.readouterr().out == f"schema at version {SCHEMA_VERSION} (applied: none)\n"
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == (
            len(schema.MIGRATIONS),
        )
    finally:
        conn.close()


def test_the_migrate_command_as_a_user_runs_it(postgres_url: str, tmp_path: Path) -> None:
    """``python -m gateway migrate`` with ``GATEWAY_DB`` a URL; then the other commands work
    on the same URL, and none takes it for a file name."""
    first = run_gateway(tmp_path / "unused.db", "migrate", GATEWAY_DB=postgres_url)
    assert first.returncode == 0, first.stderr
    assert first.stdout == f"schema at version {SCHEMA_VERSION} (applied: {ALL})\n"
    again = run_gateway(tmp_path / "unused.db", "migrate", GATEWAY_DB=postgres_url)
    assert again.stdout == f"schema at version {SCHEMA_VERSION} (applied: none)\n"
    created = run_gateway(
        tmp_path / "unused.db",
        *("keys", "create", "--caller", "采购平台", "--department", "财政厅"),
        *("--scopes", "check"),
        GATEWAY_DB=postgres_url,
    )
    assert created.returncode == 0, created.stderr
    listed = run_gateway(tmp_path / "unused.db", "keys", "list", GATEWAY_DB=postgres_url)
    assert listed.returncode == 0, listed.stderr
    assert "采购平台" in listed.stdout
    assert not list(tmp_path.iterdir()), "nothing created on disk"

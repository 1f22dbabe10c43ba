"""Copy an embedded SQLite store into PostgreSQL, verified (``python -m gateway copy-store``).

The upgrade path from one node to several: stop the gateways, copy, point
``GATEWAY_DB`` at the PostgreSQL URL. The copy

- reads the SQLite file in **one read transaction** (a consistent state even if a
  writer were still running);
- writes every table in **one PostgreSQL transaction** (``COPY``, binary), into a
  database migrated to the same schema version and holding no data yet: a copy that
  fails leaves it empty;
- keeps every identifier: caller ids, the change log's sequence numbers, the checks'
  and feedback's row numbers (which the upkeep's watermarks follow), audit line ids;
  then moves each identity sequence past the largest value copied;
- **verifies before it commits**: for every table, the row count and a SHA-256 over
  its rows in key order, each value in one canonical text form, read back from
  PostgreSQL inside the copy's transaction, must equal the source's. Any difference
  rolls everything back.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any, Final

import asyncpg
import msgspec

from gateway import recordframes
from gateway.store import subject_index
from gateway.store.pg.migrations import upgrade
from gateway.store.schema import current_version

#: Tables in the order they are copied (a table after those it refers to), with the
#: columns that order their rows. ``schema_migrations`` is not copied: the target is
#: migrated to the same version; nor ``store_identity``: the copy is another store.
TABLES: Final = (
    ("callers", "caller_id"),
    ("api_keys", "key_id"),
    ("entries", "entry_id"),
    ("entry_history", "id"),
    ("grades", "uscc"),
    ("grade_history", "id"),
    ("changes", "seq"),
    ("checks", "check_id"),
    ("feedback", "check_id"),
    ("subject_checks", "day, uscc, check_id"),
    ("subject_checks_mark", "id"),
    ("control", "key"),
    ("audit_log", "id"),
    ("loop_daily", "day, dimension, key"),
    ("loop_marks", "source"),
)
#: Tables of SQLite's subject index, in a file of its own (``gateway.store.subject_index``).
_SUBJECT_INDEX: Final = ("subject_checks", "subject_checks_mark")
#: Tables the migrations fill with their starting rows: replaced by the source's.
SEEDED: Final = ("subject_checks_mark", "loop_marks")
# ``checks`` and ``feedback`` have a column ``rowid`` on PostgreSQL: selected by that name
# from SQLite it is SQLite's row number, which the upkeep's watermarks follow.
CHUNK: Final = 5_000


class CopyError(Exception):
    """The copy was refused or did not verify; nothing was committed."""


class TableCopied(msgspec.Struct, frozen=True):
    table: str
    rows: int
    sha256: str


def _convert(data_type: str) -> Callable[[Any], Any]:
    if data_type == "date":
        return lambda v: None if v is None else date.fromisoformat(v)
    if data_type == "bytea":
        return lambda v: None if v is None else bytes(v)
    if data_type == "double precision":
        return lambda v: None if v is None else float(v)
    return lambda v: v


def _canonical(value: Any) -> bytes:
    """One text form for a value read from either database."""
    if value is None:
        return b"\x00N"
    if isinstance(value, date):
        return value.isoformat().encode()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex().encode()
    if isinstance(value, float):
        return repr(value).encode()
    return str(value).encode()


def _digest(rows: Iterator[tuple[Any, ...]] | list[tuple[Any, ...]], digest: Any) -> int:
    count = 0
    for row in rows:
        digest.update(b"\x1e".join(_canonical(value) for value in row) + b"\x1d")
        count += 1
    return count


async def _columns(conn: asyncpg.Connection, table: str) -> list[tuple[str, str, str]]:
    """(name, type, identity: '' / 'ALWAYS' / 'BY DEFAULT') of the target's columns."""
    rows = await conn.fetch(
        "SELECT column_name, data_type, coalesce(identity_generation, '') AS identity "
        "FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = $1 ORDER BY ordinal_position",
        table,
    )
    return [(r["column_name"], r["data_type"], r["identity"]) for r in rows]


def _source_tables(source: sqlite3.Connection) -> set[str]:
    return {
        name
        for (name,) in source.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    } - {"schema_migrations", "store_identity"}  # each store keeps its own identity


async def _refuse_unless_empty(conn: asyncpg.Connection) -> None:
    for table, _ in TABLES:
        if table in SEEDED:
            continue
        if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {table})"):
            raise CopyError(f"the target's table {table} holds rows: copy into an empty database")


async def copy_store(
    sqlite_path: str | Path, dsn: str, progress: Callable[[TableCopied], None] = lambda t: None
) -> list[TableCopied]:
    """Copy the SQLite store at ``sqlite_path`` into the PostgreSQL database at ``dsn`` and
    verify it (see the module's description); what was copied, table by table."""
    path = Path(sqlite_path)
    if not path.exists():
        raise CopyError(f"no SQLite store at {path}")
    if pending := recordframes.unrecovered(recordframes.directory_for(path)):
        raise CopyError(
            f"{pending} records in {recordframes.directory_for(path)} may not be in the SQLite "
            "store yet (a worker was killed): recover them first (python -m gateway "
            "recover-records, or start the gateway on it once), then copy"
        )
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    index = subject_index.path_for(path)
    tables: tuple[tuple[str, str], ...] = TABLES
    if index.exists():
        source.execute(f"ATTACH DATABASE ? AS {subject_index.ALIAS}", (f"file:{index}?mode=ro",))
    else:  # never indexed: the target's upkeep indexes every check from its first
        tables = tuple((t, o) for t, o in TABLES if t not in _SUBJECT_INDEX)
    conn = await asyncpg.connect(dsn)
    try:
        source.execute("BEGIN")
        version = current_version(source)
        missing = _source_tables(source) - {table for table, _ in TABLES}
        if missing:
            raise CopyError(f"tables this copy does not know: {sorted(missing)}")
        target_version, _ = await upgrade(conn)
        if target_version != version:
            raise CopyError(
                f"the SQLite store is at schema version {version}, the target at "
                f"{target_version}: open the SQLite store with this gateway first to migrate it"
            )
        copied: list[TableCopied] = []
        async with conn.transaction():
            await _refuse_unless_empty(conn)
            for table, order in tables:
                copied.append(await _copy_table(source, conn, table, order))
                progress(copied[-1])
        return copied
    finally:
        if source.in_transaction:
            source.execute("COMMIT")
        source.close()
        await conn.close()


async def _copy_table(
    source: sqlite3.Connection, conn: asyncpg.Connection, table: str, order: str
) -> TableCopied:
    columns = await _columns(conn, table)
    names = [name for name, _, _ in columns]
    convert = [_convert(data_type) for _, data_type, _ in columns]
    select = f"SELECT {', '.join(names)} FROM {table} ORDER BY {order}"
    if table in SEEDED:
        await conn.execute(f"DELETE FROM {table}")
    expected = hashlib.sha256()
    rows = 0
    cursor = source.execute(select)
    while chunk := cursor.fetchmany(CHUNK):
        rows += _digest(chunk, expected)
        records = [tuple(f(v) for f, v in zip(convert, row, strict=True)) for row in chunk]
        await conn.copy_records_to_table(table, records=records, columns=names)
    for name, _, identity in columns:
        if identity:
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', '{name}'), "
                f"coalesce((SELECT max({name}) FROM {table}), 0) + 1, false)"
            )
    found = hashlib.sha256()
    count = 0
    async for record in conn.cursor(select, prefetch=CHUNK):
        count += _digest([tuple(record.values())], found)
    if (count, found.hexdigest()) != (rows, expected.hexdigest()):
        raise CopyError(
            f"{table}: {rows} rows read, {count} rows in the target, checksums "
            f"{expected.hexdigest()[:12]} / {found.hexdigest()[:12]}: nothing committed"
        )
    return TableCopied(table, rows, expected.hexdigest())

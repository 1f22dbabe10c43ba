"""``python -m gateway migrate``: bring the store's schema to this code's version, for a
SQLite file or a PostgreSQL database (``GATEWAY_DB=postgresql://...``), and say so; and
``python -m gateway copy-store --to URL``: copy a SQLite store into PostgreSQL, verified.

Nodes also migrate when they start (safe when several start at once); this lets a
deployment migrate first, on its own, and see what was done.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path

import asyncpg

from gateway.store import SchemaError, Store, backend, schema
from gateway.store.pg import is_postgres_url, upgrade

#: What a store that cannot be reached, read or migrated raises: reported, not a traceback.
STORE_ERRORS = (SchemaError, *backend.STORE_ERRORS)


async def run_migrate(db: str) -> str:
    """Apply the missing migrations to ``db`` (a ``postgresql://`` or ``postgres://`` URL,
    else a SQLite file, created if missing); one line: the version and what this call
    applied. Raises :class:`~gateway.store.SchemaError` for a database newer than the code.
    """
    if is_postgres_url(db):
        conn = await asyncpg.connect(db)
        try:
            version, applied = await upgrade(conn)
        finally:
            await conn.close()
    else:
        before = _sqlite_version(db)
        async with await Store.open(db) as store:  # migrates
            version = store.schema_version
        applied = tuple(v for v, _ in schema.MIGRATIONS if before < v <= version)
    done = ", ".join(map(str, applied)) or "none"
    return f"schema at version {version} (applied: {done})"


def _sqlite_version(path: str) -> int:
    """The file's schema version before migrating (0 if there is no file yet)."""
    if not Path(path).exists():
        return 0
    conn = sqlite3.connect(path)
    try:
        return schema.current_version(conn)
    finally:
        conn.close()


def migrate_command(db: str) -> int:
    """The command: print :func:`run_migrate`'s line and return 0, or the error and 1 (the
    database's URL, which may hold a password, is not part of the line)."""
    try:
        print(asyncio.run(run_migrate(db)))
    except STORE_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def copy_command(sqlite_path: str, dsn: str) -> int:
    """The command: copy, printing each table as it is verified; 0, or the error and 1."""
    from gateway.store.pg.copy import CopyError, TableCopied, copy_store

    if is_postgres_url(sqlite_path) or not is_postgres_url(dsn):
        print("error: copy-store copies GATEWAY_DB (a SQLite file) --to a postgresql:// URL",
              file=sys.stderr)  # fmt: skip
        return 2

    def show(table: TableCopied) -> None:
        print(f"  {table.table:20} {table.rows:>12,} rows  sha256 {table.sha256[:16]}  verified")

    print(f"copying {sqlite_path} into PostgreSQL (one transaction) ...")
    try:
        copied = asyncio.run(copy_store(sqlite_path, dsn, show))
    except (CopyError, *STORE_ERRORS) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    total = sum(table.rows for table in copied)
    print(f"{total:,} rows in {len(copied)} tables copied, counts and checksums verified")
    return 0


def recover_records_command(db: str, ring_bytes: int) -> int:
    """``recover-records``: give the SQLite store ``db`` what the record log's free slots
    hold (the slots of workers that were killed), as a worker does when it starts; say
    how many records were pending before and after (a slot a running worker holds is
    left to it). 0, or the error and 1."""
    from gateway import recordframes
    from gateway.store.checks import CheckWriter

    if is_postgres_url(db):
        print("error: recover-records is for a SQLite store (GATEWAY_DB)", file=sys.stderr)
        return 2
    if not Path(db).exists():
        print(f"error: no SQLite store at {db}", file=sys.stderr)
        return 1
    directory = recordframes.directory_for(db)
    before = recordframes.unrecovered(directory)
    try:
        with CheckWriter(db, synchronous="NORMAL") as inline:
            backend.record_log_opener(db, ring_bytes)(inline.open()).close()
    except (OSError, *STORE_ERRORS) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    after = recordframes.unrecovered(directory)
    print(
        f"{before - after} records recovered into {db} from {directory}"
        + (f"; {after} held by running workers" if after else "")
    )
    return 0

"""Connection settings and applying the migrations (:mod:`gateway.store.migrations`).

:func:`migrate` applies the missing migrations, each in its own
``BEGIN IMMEDIATE`` transaction that re-reads the current version after taking
the write lock, so several processes may open the same file at once: the first
applies a migration, the others see it applied and move on.
"""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime
from typing import Final

from gateway.store import migrations
from gateway.store.errors import SchemaError

#: The SQL condition of a live entry: it may still produce measures.
LIVE_CONDITION: Final = "status IN ('active', 'objection_pending')"

#: Every migration, in order (see :mod:`gateway.store.migrations`).
MIGRATIONS: Final = migrations.MIGRATIONS

#: The schema version this code expects.
LATEST: Final = MIGRATIONS[-1][0]

_SYNCHRONOUS: Final = frozenset({"OFF", "NORMAL", "FULL", "EXTRA"})
#: Pages of log (4 KiB each: 128 MiB) past which a commit runs SQLite's own checkpoint,
#: unpaced, with the database file's fsync: twice the size at which the server's upkeep
#: runs its paced one (``gateway.store.maintenance.WAL_LIMIT``), so that, with a server
#: running, the paced checkpoint is the only one, and without (a bulk import alone) the
#: log still stops growing. At SQLite's default of 1,000 pages every commit under load
#: ran one, which held up the recorder's fsync of the log (the recorder's own connection
#: and the upkeep's turn it off altogether).
OWN_CHECKPOINT_PAGES: Final = 32_768


def split_statements(script: str) -> list[str]:
    """Split an SQL script into complete statements (triggers' ``BEGIN ... END`` included).

    ``executescript`` would commit the enclosing transaction first, so
    migrations run statement by statement instead.
    """
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statement = pending.strip()
            if statement.rstrip(";").strip() and not _only_comments(statement):
                statements.append(statement)
            pending = ""
    if pending.strip() and not _only_comments(pending):
        raise ValueError(f"incomplete SQL statement at the end of a script: {pending.strip()!r}")
    return statements


def _only_comments(text: str) -> bool:
    return all(
        not line.strip() or line.strip().startswith("--") or line.strip() == ";"
        for line in text.splitlines()
    )


def check_synchronous(value: str) -> str:
    """Validate a ``PRAGMA synchronous`` level (it cannot be a bound parameter)."""
    level = value.upper()
    if level not in _SYNCHRONOUS:
        raise ValueError(f"synchronous must be one of {sorted(_SYNCHRONOUS)}, not {value!r}")
    return level


def pragmas(synchronous: str, busy_timeout_ms: int) -> list[str]:
    """The per-connection settings every connection to the gateway's file uses."""
    if busy_timeout_ms < 0:
        raise ValueError("busy_timeout_ms must not be negative")
    return [
        f"PRAGMA busy_timeout = {int(busy_timeout_ms)}",
        "PRAGMA foreign_keys = ON",
        f"PRAGMA synchronous = {check_synchronous(synchronous)}",
        f"PRAGMA wal_autocheckpoint = {OWN_CHECKPOINT_PAGES}",
    ]


def begin_immediate(conn: sqlite3.Connection, busy_timeout_ms: int) -> None:
    """Take the write lock, retrying every 0.1-2 ms until ``busy_timeout_ms``.

    SQLite's own busy handler sleeps 1, 2, 5, 10 ... 100 ms between tries: two
    workers' recorders committing every few milliseconds would lose whole
    commits' worth of time to it. The connection runs with ``busy_timeout = 0``
    and this loop retries at the scale of a commit instead.
    """
    deadline = time.monotonic() + busy_timeout_ms / 1000
    delay = 0.0001
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 1.5, 0.002)


def enable_wal(conn: sqlite3.Connection, busy_timeout_ms: int) -> None:
    """Switch the file to WAL (persistent); retry while another process holds a lock."""
    deadline = time.monotonic() + max(busy_timeout_ms, 1000) / 1000
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
            continue
        if str(mode).lower() != "wal":
            raise SchemaError(f"cannot switch the database to WAL mode (journal_mode={mode})")
        return


def current_version(conn: sqlite3.Connection) -> int:
    """The highest applied migration, 0 for a new file."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    if exists is None:
        return 0
    row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)


def latest_of(migrations: tuple[tuple[int, str], ...]) -> int:
    """The version ``migrations`` bring a database to (0 for none), once checked that
    their versions are positive and strictly increasing (both backends)."""
    versions = [version for version, _ in migrations]
    if versions != sorted(set(versions)) or (versions and versions[0] < 1):
        raise ValueError("migration versions must be positive and strictly increasing")
    return versions[-1] if versions else 0


def refuse_newer(version: int, latest: int) -> None:
    """:class:`SchemaError` for a database at a version newer than this code knows."""
    if version > latest:
        raise SchemaError(
            f"the database schema is version {version}, newer than this code knows "
            f"({latest}); upgrade the gateway"
        )


def migrate(
    conn: sqlite3.Connection,
    migrations: tuple[tuple[int, str], ...] = MIGRATIONS,
) -> int:
    """Apply the missing migrations, one transaction each; return the schema version.

    ``conn`` must be in autocommit mode (``isolation_level=None``) with a busy
    timeout set. Raises :class:`SchemaError` if the file is newer than ``migrations``.
    """
    latest = latest_of(migrations)
    version = current_version(conn)
    while True:
        refuse_newer(version, latest)
        if version == latest:
            return version
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            # Re-read under the write lock: another process may have migrated meanwhile.
            row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
            version = int(row[0] or 0)
            pending = [(v, script) for v, script in migrations if v > version]
            if pending and version <= latest:
                next_version, script = pending[0]
                for statement in split_statements(script):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    (next_version, datetime.now().astimezone().isoformat(timespec="seconds")),
                )
                version = next_version
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


def prepare(path: str, synchronous: str = "FULL", busy_timeout_ms: int = 10_000) -> int:
    """Open ``path`` once with plain sqlite3: WAL on, migrations applied; return the version."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout_ms / 1000)
    try:
        for pragma in pragmas(synchronous, busy_timeout_ms):
            conn.execute(pragma)
        enable_wal(conn, busy_timeout_ms)
        return migrate(conn)
    finally:
        conn.close()

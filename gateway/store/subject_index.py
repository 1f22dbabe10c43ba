"""The index of recorded checks by subject, in a file of its own beside the database.

``subject_checks (day, uscc, check_id)`` answers "this subject's latest checks" (see
:func:`gateway.store.checks.recent_checks`); the upkeep fills it from ``checks`` after the
fact, up to its watermark ``subject_checks_mark``. It lives in ``<database>.subjects``,
not in the database, because of what filling it costs:

* a check lands on a page of its own of the day's part of the index (codes in random
  order), so a step of a few hundred checks writes a page of log per check: 31-34 µs and
  6.4 KB of log a check in steps of 100, against 5.7 µs and 0.9 KB in steps of 20,000,
  where each page takes many checks before it is written;
* in the database a step holds the write lock that every group commit of the recorder
  waits for, so steps had to stay small (100 checks, 1.5-1.9 ms); here they hold the
  index's own lock, which nothing on the path of a check takes.

The file is derived from ``checks`` alone: a missing one is created empty and the upkeep
indexes every check again, and an index ahead of its database (restored from an older
copy) starts again from nothing. Readers attach it to their connections as
``subjects``; the upkeep opens it as its main database and attaches the database
read-only, so its transactions never take the database's write lock.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final

from gateway.store import schema

#: The schema name readers attach the index under.
ALIAS: Final = "subjects"
#: The schema name the upkeep's connection attaches the database under (read-only).
RECORDED: Final = "recorded"

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS subject_checks (
    day       TEXT NOT NULL,               -- YYYY-MM-DD of checked_at (China Standard Time)
    uscc      TEXT NOT NULL,
    check_id  TEXT NOT NULL,
    PRIMARY KEY (day, uscc, check_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS subject_checks_mark (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    last_rowid  INTEGER NOT NULL
);
INSERT OR IGNORE INTO subject_checks_mark (id, last_rowid) VALUES (1, 0);
"""


def path_for(database: str | Path) -> Path:
    """The index file of ``database``.

    >>> path_for("var/gateway.db").as_posix()
    'var/gateway.db.subjects'
    """
    database = Path(database)
    return database.with_name(f"{database.name}.subjects")


def ensure(database: str | Path, busy_timeout_ms: int = 10_000) -> None:
    """Create the index file of ``database`` (empty, in WAL mode) unless it exists.

    Safe when several processes do it at once."""
    conn = sqlite3.connect(path_for(database), isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        schema.enable_wal(conn, busy_timeout_ms)
        schema.begin_immediate(conn, busy_timeout_ms)
        try:
            for statement in schema.split_statements(_SCHEMA):
                conn.execute(statement)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()


def attach_sql(database: str | Path) -> tuple[str, tuple[str]]:
    """The statement (and its parameter) that attaches the index of ``database`` to a
    connection to it, as :data:`ALIAS`."""
    return f"ATTACH DATABASE ? AS {ALIAS}", (str(path_for(database)),)


def connect_upkeep(database: str | Path) -> sqlite3.Connection:
    """The upkeep's connection: the index as its main database, ``database`` attached
    read-only as :data:`RECORDED` (a ``BEGIN IMMEDIATE`` takes no lock of it)."""
    index = path_for(database).resolve()
    conn = sqlite3.connect(index.as_uri(), uri=True, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA busy_timeout = 0")
        # Derived data: a commit lost to a power cut is indexed again from the watermark
        # that went with it, so no fsync per step; the upkeep's paced checkpoint is the only
        # one (SQLite's own would fsync the index file in one go beside the recorder's log).
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        recorded = Path(database).resolve().as_uri() + "?mode=ro"
        conn.execute(f"ATTACH DATABASE ? AS {RECORDED}", (recorded,))
    except BaseException:
        conn.close()
        raise
    return conn


def index_step(conn: sqlite3.Connection, limit: int, busy_timeout_ms: int = 10_000) -> int:
    """Index up to ``limit`` checks recorded past the watermark, in one transaction of the
    index (sorted, one INSERT ... SELECT: SQLite does it without the GIL); how many.

    ``conn`` is :func:`connect_upkeep`'s."""
    schema.begin_immediate(conn, busy_timeout_ms)
    try:
        (mark,) = conn.execute("SELECT last_rowid FROM subject_checks_mark").fetchone()
        (last,) = conn.execute(f"SELECT coalesce(max(rowid), 0) FROM {RECORDED}.checks").fetchone()
        if mark > last:  # the database is older than its index: start again
            conn.execute("DELETE FROM subject_checks")
            mark = 0
        upto = min(last, mark + limit)
        if upto > mark:
            conn.execute(
                "INSERT OR IGNORE INTO subject_checks (day, uscc, check_id) "
                f"SELECT substr(checked_at, 1, 10), uscc, check_id FROM {RECORDED}.checks "
                "WHERE rowid > ? AND rowid <= ? ORDER BY 1, 2, 3",
                (mark, upto),
            )
        conn.execute("UPDATE subject_checks_mark SET last_rowid = ? WHERE id = 1", (upto,))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return max(int(upto) - int(mark), 0)


def pending(conn: sqlite3.Connection) -> int:
    """Checks recorded past the watermark (``conn``: :func:`connect_upkeep`'s)."""
    (count,) = conn.execute(
        f"SELECT coalesce((SELECT max(rowid) FROM {RECORDED}.checks), 0) - "
        "(SELECT last_rowid FROM subject_checks_mark WHERE id = 1)"
    ).fetchone()
    return max(int(count), 0)

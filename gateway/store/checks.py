"""Recorded checks and feedback (SQL): the recorder's synchronous writer, async reads.

:class:`CheckWriter` is what the recorder's one writer thread uses for group
commit: each :meth:`CheckWriter.write` call is one transaction holding a batch
of checks and feedback, committed before it returns (``synchronous=FULL`` by
default: committed means on disk, so a caller's 200 survives a crash).
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Final

import aiosqlite
import msgspec

from gateway.logsync import LogFile
from gateway.model import CheckRecord, FeedbackRecord, MeasureFeedback
from gateway.store import schema
from gateway.store.rows import to_json

CHECK_COLUMNS: Final = (
    "check_id, caller_id, matter, uscc, verdict, hit_ids, measures, snapshot_version, "
    "catalog_version, checked_at, latency_us, response, matter_code, case_ref, batch_id"
)
_INSERT_CHECK: Final = (
    f"INSERT INTO checks ({CHECK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
#: Checks per INSERT statement (15 columns each, well under SQLite's 32,766 variables).
_ROWS_PER_INSERT: Final = 500


@functools.lru_cache(maxsize=64)
def _insert_checks_sql(rows: int, *, or_ignore: bool = False) -> str:
    """One multi-row INSERT: a whole batch in one sqlite3_step, so the writer thread
    gives up and takes back the GIL once per batch, not once per check (each time
    it must wait for the busy event loop to let go of it). ``or_ignore``: checks already
    stored are left as they are (a recovery from the record log)."""
    sql = _INSERT_CHECK + ", (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" * (rows - 1)
    return sql.replace("INSERT", "INSERT OR IGNORE", 1) if or_ignore else sql


FEEDBACK_COLUMNS: Final = (
    "check_id, caller_id, measures, outcome, handled_by, handled_at, received_at, body"
)
_INSERT_FEEDBACK: Final = (
    f"INSERT INTO feedback ({FEEDBACK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (check_id) DO NOTHING"
)

_hit_ids: Final = msgspec.json.Decoder(tuple[str, ...])
_measures: Final = msgspec.json.Decoder(tuple[tuple[str, str], ...])
_feedback_measures: Final = msgspec.json.Decoder(tuple[MeasureFeedback, ...])


class StoredCheck(CheckRecord, frozen=True, kw_only=True):
    """A check as the store holds it: every column of ``checks`` (a :class:`CheckRecord`)."""


def check_params(c: CheckRecord) -> tuple[Any, ...]:
    """The values of :data:`CHECK_COLUMNS` for ``c`` (JSON columns encoded)."""
    return (
        c.check_id,
        c.caller_id,
        c.matter,
        c.uscc,
        c.verdict,
        to_json(c.hit_ids),
        to_json(c.measures),
        c.snapshot_version,
        c.catalog_version,
        c.checked_at,
        c.latency_us,
        c.response,
        c.matter_code,
        c.case_ref,
        c.batch_id,
    )


def feedback_params(f: FeedbackRecord) -> tuple[Any, ...]:
    """The values of :data:`FEEDBACK_COLUMNS` for ``f`` (JSON columns encoded)."""
    return (
        f.check_id,
        f.caller_id,
        to_json(f.measures),
        f.outcome,
        f.handled_by,
        f.handled_at,
        f.received_at,
        f.body,
    )


class CheckWriter:
    """Synchronous writer of check and feedback batches, on its own sqlite3 connection.

    The connection is opened lazily by the first :meth:`write` (so in the
    thread that writes) and may be closed from any thread. On first use it also
    makes sure the schema is migrated. Not for concurrent use by several threads.
    """

    def __init__(
        self, path: str | Path, *, synchronous: str = "FULL", busy_timeout_ms: int = 10_000
    ) -> None:
        self.path = Path(path)
        self.synchronous = schema.check_synchronous(synchronous)
        self.busy_timeout_ms = busy_timeout_ms
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._log = LogFile(str(self.path))

    def _connect(self) -> sqlite3.Connection:
        if self._closed:
            raise RuntimeError("CheckWriter is closed")
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path,
                isolation_level=None,
                timeout=self.busy_timeout_ms / 1000,
                check_same_thread=False,
            )
            try:
                for pragma in schema.pragmas(self.synchronous, self.busy_timeout_ms):
                    conn.execute(pragma)
                schema.enable_wal(conn, self.busy_timeout_ms)
                schema.migrate(conn)
                # Checkpoints run in the maintenance thread, not inside a group commit, and
                # the write lock is taken by begin_immediate's short retries.
                conn.execute("PRAGMA wal_autocheckpoint = 0")
                conn.execute("PRAGMA busy_timeout = 0")
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def open(self) -> CheckWriter:
        """Connect (and migrate) now, in the calling thread, rather than on the first write."""
        with self._lock:
            self._connect()
        return self

    def write(
        self, checks: Sequence[CheckRecord], feedback: Sequence[FeedbackRecord] = ()
    ) -> list[bool]:
        """Insert ``checks`` then ``feedback`` in one transaction, and commit.

        Returns, for each feedback in order, True if it was inserted, False if
        feedback for that check already existed (or came earlier in the batch).
        A duplicate check id, or feedback for an unknown check, fails the whole
        call (nothing is written) with ``sqlite3.IntegrityError``.
        """
        if not checks and not feedback:
            return []
        with self._lock:
            conn = self._connect()
            schema.begin_immediate(conn, self.busy_timeout_ms)
            return self._insert_and_commit(conn, checks, feedback)

    def store_identity(self) -> str:
        """The store's identity: random, made when the database was created."""
        with self._lock:
            (identity,) = self._connect().execute("SELECT id FROM store_identity").fetchone()
        return str(identity)

    def restore(self, checks: Sequence[CheckRecord], feedback: Sequence[FeedbackRecord]) -> None:
        """As :meth:`write`, for records recovered from the record log: those already
        stored (the most, usually) are left as they are; the rest are inserted."""
        if not checks and not feedback:
            return
        with self._lock:
            conn = self._connect()
            schema.begin_immediate(conn, self.busy_timeout_ms)
            self._insert_and_commit(conn, checks, feedback, or_ignore=True)

    def try_write(
        self, checks: Sequence[CheckRecord], feedback: Sequence[FeedbackRecord] = ()
    ) -> list[bool] | None:
        """As :meth:`write`, but without waiting: None (nothing written) if another
        connection holds the write lock. For the event loop's thread, which must never
        wait for a lock."""
        if not checks and not feedback:
            return []
        with self._lock:
            conn = self._connect()
            try:
                conn.execute("BEGIN IMMEDIATE")  # busy_timeout is 0: fails at once if taken
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    return None
                raise
            return self._insert_and_commit(conn, checks, feedback)

    def _insert_and_commit(
        self,
        conn: sqlite3.Connection,
        checks: Sequence[CheckRecord],
        feedback: Sequence[FeedbackRecord],
        *,
        or_ignore: bool = False,
    ) -> list[bool]:
        try:
            for start in range(0, len(checks), _ROWS_PER_INSERT):
                chunk = checks[start : start + _ROWS_PER_INSERT]
                conn.execute(
                    _insert_checks_sql(len(chunk), or_ignore=or_ignore),
                    [value for c in chunk for value in check_params(c)],
                )
            inserted = [
                conn.execute(_INSERT_FEEDBACK, feedback_params(f)).rowcount == 1 for f in feedback
            ]
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return inserted

    def sync_wal(self) -> None:
        """fsync the write-ahead log: every transaction committed before the call is then
        on disk (what ``synchronous = FULL`` does at each commit, here once for many).

        The file is reopened if it was replaced; with no log (nothing written yet, or
        all of it checkpointed and the log removed) the database file is synced."""
        self._log.sync()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._log.close()
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> CheckWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def stored_check(r: Sequence[Any]) -> StoredCheck:
    """A :class:`StoredCheck` from a row selected with :data:`CHECK_COLUMNS` (either backend)."""
    return StoredCheck(
        check_id=r[0],
        caller_id=r[1],
        matter=r[2],
        uscc=r[3],
        verdict=r[4],
        hit_ids=_hit_ids.decode(r[5]),
        measures=_measures.decode(r[6]),
        snapshot_version=r[7],
        catalog_version=r[8],
        checked_at=r[9],
        latency_us=r[10],
        response=bytes(r[11]),
        matter_code=r[12],
        case_ref=r[13],
        batch_id=r[14],
    )


async def get_check(db: aiosqlite.Connection, check_id: str) -> StoredCheck | None:
    rows = list(
        await db.execute_fetchall(
            f"SELECT {CHECK_COLUMNS} FROM checks WHERE check_id = ?", (check_id,)
        )
    )
    return stored_check(rows[0]) if rows else None


async def walk_subject_index(
    ids: list[str],
    first: date | None,
    last: date | None,
    limit: int,
    days: int,
    indexed: Callable[[date, int], Awaitable[list[str]]],
) -> list[str]:
    """``ids`` (the subject's checks recorded since the indexing mark, newest first) followed
    by its indexed ones, day by day from ``last`` (the newest day indexed) back to ``first``
    (the oldest), at most ``days`` days back, until there are ``limit``: ``indexed(day, n)``
    is the day's newest ``n`` (one index seek a day). Backend-neutral: each store gives its
    own ``indexed``."""
    if first is None or last is None:  # nothing indexed yet
        return ids[:limit]
    for back in range(days + 1):
        day = last - timedelta(days=back)
        if len(ids) >= limit or day < first:
            break
        ids.extend(i for i in await indexed(day, limit - len(ids)) if i not in ids)
    return ids[:limit]


async def recent_checks(
    db: aiosqlite.Connection, uscc: str, limit: int, days: int = 366
) -> list[StoredCheck]:
    """The subject's latest checks, newest first: those recorded since the indexing
    mark, then the indexed ones day by day from the newest day indexed (one index
    seek a day, at most ``days`` days back)."""
    ids: list[str] = [
        r[0]
        for r in await db.execute_fetchall(
            "SELECT check_id FROM checks WHERE uscc = ? AND rowid > "
            "(SELECT last_rowid FROM subject_checks_mark WHERE id = 1) "
            "ORDER BY rowid DESC LIMIT ?",
            (uscc, limit),
        )
    ]
    bounds = list(await db.execute_fetchall("SELECT min(day), max(day) FROM subject_checks"))

    async def indexed(day: date, count: int) -> list[str]:
        return [
            r[0]
            for r in await db.execute_fetchall(
                "SELECT check_id FROM subject_checks WHERE day = ? AND uscc = ? "
                "ORDER BY check_id DESC LIMIT ?",
                (day.isoformat(), uscc, count),
            )
        ]

    first, last = (date.fromisoformat(d) if d else None for d in bounds[0])
    ids = await walk_subject_index(ids, first, last, limit, days, indexed)
    if not ids:
        return []
    marks = ", ".join("?" * len(ids))
    rows = await db.execute_fetchall(
        f"SELECT {CHECK_COLUMNS} FROM checks WHERE check_id IN ({marks}) ORDER BY check_id DESC",
        ids,
    )
    return [stored_check(r) for r in rows]


async def get_feedback(db: aiosqlite.Connection, check_id: str) -> FeedbackRecord | None:
    rows = list(
        await db.execute_fetchall(
            f"SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE check_id = ?", (check_id,)
        )
    )
    return stored_feedback(rows[0]) if rows else None


def stored_feedback(r: Sequence[Any]) -> FeedbackRecord:
    """A :class:`FeedbackRecord` from a row selected with :data:`FEEDBACK_COLUMNS` (either
    backend)."""
    return FeedbackRecord(
        check_id=r[0],
        caller_id=r[1],
        measures=_feedback_measures.decode(r[2]),
        outcome=r[3],
        handled_by=r[4],
        handled_at=r[5],
        received_at=r[6],
        body=bytes(r[7]),
    )

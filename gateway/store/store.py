"""The async store: two aiosqlite connections per process, short transactions.

Several worker processes share one SQLite file (WAL). Every write is one
``BEGIN IMMEDIATE`` transaction on the write connection: it takes the file's
write lock before reading what it will change, so a read-modify-write never
races another process, and waits up to ``busy_timeout_ms`` for the lock. Within
a process, an ``asyncio.Lock`` per connection keeps coroutines from
interleaving statements inside one another's transactions. Reads go to the
read connection (``query_only``) and never wait for a write.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable, Sequence
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import aiosqlite

from gateway.model import Caller, EntryInput, FeedbackRecord, Grade, ListEntry, StatusChange
from gateway.store import (
    audit,
    callers,
    checks,
    control,
    entries,
    grades,
    lifecycle,
    live,
    reports,
    schema,
    subject_index,
)
from gateway.store import lifecycle as moves
from gateway.store.callers import KeyInForce, KeyLimits
from gateway.store.checks import StoredCheck
from gateway.store.entries import UpsertCounts, UpsertResult
from gateway.store.grades import GradeResult
from gateway.store.live import LiveRows
from gateway.store.reports import GroupBy

T = TypeVar("T")
_Work = Callable[[aiosqlite.Connection], Awaitable[T]]


class Store:
    """Everything the gateway keeps, behind async methods. Open with :meth:`open`.

    Two connections, each with its own thread: one for writes, one for reads, so
    a read (a key lookup, a feed poll) never waits behind an import's transaction;
    in WAL mode a read sees the last committed state.
    """

    def __init__(
        self,
        writer: aiosqlite.Connection,
        reader: aiosqlite.Connection,
        report_reader: aiosqlite.Connection,
        path: Path,
        version: int,
    ) -> None:
        self._writer = writer
        self._reader = reader
        #: Reports and the audit log read on a connection of their own: a loop report
        #: scans for tens of milliseconds, and on the one read connection every feedback's
        #: look-up of its check, the key ring's reload and the change log's poll queued
        #: behind it (feedback p99 80-85 ms under Locust; see docs/performance.md).
        self._report_reader = report_reader
        self._write_lock = asyncio.Lock()
        self._read_lock = asyncio.Lock()
        self._report_lock = asyncio.Lock()
        self.path = path
        self._version = version

    @classmethod
    async def open(
        cls, path: str | Path, *, synchronous: str = "FULL", busy_timeout_ms: int = 10_000
    ) -> Store:
        """Create the file (and its directory) if needed, switch to WAL, migrate, connect.

        Safe when several processes open the same file at once.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        version = await asyncio.to_thread(schema.prepare, str(path), synchronous, busy_timeout_ms)
        await asyncio.to_thread(subject_index.ensure, path, busy_timeout_ms)
        settings = schema.pragmas(synchronous, busy_timeout_ms)
        opened: list[aiosqlite.Connection] = []
        try:
            for readers in (False, True, True):
                conn = await aiosqlite.connect(path, isolation_level=None)
                opened.append(conn)
                for pragma in settings + (["PRAGMA query_only = ON"] if readers else []):
                    await conn.execute(pragma)
                if readers:  # a subject's recent checks
                    await conn.execute(*subject_index.attach_sql(path))
        except BaseException:
            for conn in opened:
                await conn.close()
            raise
        writer, reader, report_reader = opened
        return cls(writer, reader, report_reader, path, version)

    @property
    def schema_version(self) -> int:
        return self._version

    async def close(self) -> None:
        async with self._write_lock, self._read_lock, self._report_lock:
            await self._writer.close()
            await self._reader.close()
            await self._report_reader.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- transactions ---------------------------------------------------------------

    async def _write(self, work: _Work[T]) -> T:
        """Run ``work`` in one ``BEGIN IMMEDIATE`` transaction; commit, or roll back and raise.

        The asyncio lock keeps other coroutines' statements out of the transaction.
        """
        async with self._write_lock:
            try:
                await self._writer.execute("BEGIN IMMEDIATE")
                result = await work(self._writer)
                await self._writer.execute("COMMIT")
            except BaseException:
                # Queued after whatever still runs on the connection's thread (even when
                # cancelled), so a transaction never outlives the lock.
                await asyncio.shield(_end(self._writer, "ROLLBACK"))
                raise
            return result

    async def _read(self, work: _Work[T], *, snapshot: bool = False, report: bool = False) -> T:
        """Run ``work`` on the read connection (``report``: the reports' own); with
        ``snapshot``, in one read transaction so that all its queries see the same state."""
        lock, reader = (
            (self._report_lock, self._report_reader) if report else (self._read_lock, self._reader)
        )
        async with lock:
            if not snapshot:
                return await work(reader)
            try:
                await reader.execute("BEGIN")
                return await work(reader)
            finally:
                await asyncio.shield(_end(reader, "COMMIT"))

    # --- callers and keys -----------------------------------------------------------

    async def create_key(
        self,
        caller_name: str,
        department: str,
        scopes: Iterable[str],
        limits: KeyLimits | None = None,
        actor: str = "system",
    ) -> tuple[Caller, str]:
        """A new key for the caller (created if new); the plaintext key is returned only here."""
        name, dept = caller_name.strip(), department.strip()
        if not name or not dept:
            raise ValueError("caller name and department must not be empty")
        wanted = callers.normalize_scopes(scopes)
        limits = limits or KeyLimits()
        return await self._write(
            lambda db: callers.create_key(db, name, dept, wanted, limits, actor)
        )

    async def keys_in_force(self) -> dict[str, KeyInForce]:
        """Every key not revoked, by key id (with its salt and digest, never the key)."""
        return await self._read(callers.keys_in_force)

    async def revoke_key(self, key_id: str, actor: str = "system") -> bool:
        """Revoke a key; False if there is no such key or it was already revoked."""
        return await self._write(lambda db: callers.revoke_key(db, key_id, actor))

    async def rotate_key(
        self, key_id: str, overlap: timedelta, actor: str = "system"
    ) -> tuple[Caller, str, dict[str, Any]]:
        """A new key replacing ``key_id``, which stays valid for ``overlap``
        (:class:`~gateway.store.callers.KeyNotFound` if it is not in force)."""
        return await self._write(lambda db: callers.rotate_key(db, key_id, overlap, actor))

    async def set_key_limits(
        self, key_id: str, limits: KeyLimits, actor: str = "system"
    ) -> dict[str, Any]:
        """Set a key's expiry and rate limit; the key as it now stands."""
        return await self._write(lambda db: callers.set_limits(db, key_id, limits, actor))

    async def list_keys(self) -> list[dict[str, Any]]:
        """Every key with its caller, scopes, dates and limits (never its digest)."""
        return await self._read(callers.list_keys)

    async def loop_report(
        self, first: date, last: date, group_by: GroupBy, today: date, due_days: int
    ) -> list[dict[str, Any]]:
        """The loop report (see :mod:`gateway.store.reports`), from one read transaction."""
        return await self._read(
            lambda db: reports.loop_report(db, first, last, group_by, today, due_days),
            snapshot=True,
            report=True,
        )

    async def feedback_backlog(self, today: date, due_days: int) -> tuple[int, int]:
        """Checks needing feedback without any, and those overdue (rolled up so far)."""
        return await self._read(
            lambda db: reports.feedback_backlog(db, today, due_days), report=True
        )

    async def audit(self, **filters: Any) -> list[dict[str, Any]]:
        """Lines of the audit log (see :func:`gateway.store.audit.query`)."""
        return await self._read(lambda db: audit.query(db, **filters), report=True)

    # --- entries --------------------------------------------------------------------

    async def upsert_entries(self, rows: Sequence[EntryInput], actor: str) -> UpsertResult:
        """Import entries in one transaction (all or nothing), idempotent on (source, source_id).

        The file's write lock is held for the whole call (about 25 µs a row), and the
        recorder waits behind it: keep calls to a few thousand rows.
        """
        if not rows:
            return UpsertResult(0, 0, 0, [])
        return await self._write(lambda db: entries.upsert(db, rows, actor))

    async def apply_staging(
        self, path: Path, actor: str, chunk: int = 10_000
    ) -> AsyncIterator[tuple[int, UpsertCounts]]:
        """Apply a sealed :class:`~gateway.store.staging.StagingFile`, ``chunk`` row numbers
        per transaction so that the recorder's commits never wait long; yields the rows
        applied so far and what the chunk did.

        A failure leaves the chunks before it applied; applying the same rows again
        finishes the job (idempotent on (source, source_id)).
        """
        async with self._write_lock:
            await self._writer.execute("ATTACH DATABASE ? AS staging", (str(path),))
            # Index pages of a large table stay in memory between chunks (64 MiB).
            cache = next(iter(await self._writer.execute_fetchall("PRAGMA main.cache_size")))[0]
            await self._writer.execute("PRAGMA main.cache_size = -65536")
        try:
            async with self._write_lock:
                found = await self._writer.execute_fetchall(
                    "SELECT coalesce(min(row), 1), coalesce(max(row), 0) FROM staging.staged"
                )
            low, high = next(iter(found))
            done = 0
            for first in range(low, high + 1, chunk):
                counts = await self._write(
                    partial(
                        entries.apply_staged,
                        schema="staging",
                        first=first,
                        last=first + chunk - 1,
                        actor=actor,
                        audited=True,
                    )
                )
                done += counts.inserted + counts.updated + counts.unchanged
                yield done, counts
        finally:
            async with self._write_lock:
                await self._writer.execute("DETACH DATABASE staging")
                await self._writer.execute(f"PRAGMA main.cache_size = {int(cache)}")

    async def open_objection(
        self, entry_id: str, opened_on: date, note: str, actor: str
    ) -> ListEntry:
        """active → objection_pending: its punishments are suspended while it is verified."""
        return await self._write(
            lambda db: lifecycle.transition(db, entry_id, moves.objection(opened_on, note), actor)
        )

    async def resolve_objection(
        self, entry_id: str, upheld: bool, note: str, actor: str
    ) -> ListEntry:
        """objection_pending → revoked if upheld (the listing was wrong), else → active."""
        return await self._write(
            lambda db: lifecycle.transition(db, entry_id, moves.resolution(upheld, note), actor)
        )

    async def repair(
        self, entry_id: str, repaired_on: date, decision_no: str, actor: str
    ) -> ListEntry:
        """active or objection_pending → repaired (信用修复)."""
        return await self._write(
            lambda db: lifecycle.transition(
                db, entry_id, moves.repair(repaired_on, decision_no), actor
            )
        )

    async def revoke(self, entry_id: str, note: str, actor: str) -> ListEntry:
        """active or objection_pending → revoked."""
        return await self._write(
            lambda db: lifecycle.transition(db, entry_id, moves.revocation(note), actor)
        )

    async def mark_expired(self, today: date, actor: str, *, batch: int = 5_000) -> int:
        """Every active entry with ``expires_on < today`` → expired; returns how many.

        One transaction per ``batch`` entries (each expiry stands alone), so a first
        sweep over years of data never holds the write lock for long.
        """
        if batch < 1:
            raise ValueError("batch must be at least 1")
        total = 0
        while True:
            done = await self._write(lambda db: lifecycle.mark_expired(db, today, actor, batch))
            total += done
            if done < batch:
                return total

    async def get_entry(self, entry_id: str) -> ListEntry | None:
        return await self._read(lambda db: entries.get(db, entry_id))

    async def entry_history(self, entry_id: str) -> list[StatusChange]:
        """The entry's status history, oldest first (empty for an unknown id)."""
        return await self._read(lambda db: entries.history(db, entry_id))

    async def subject_entries(self, uscc: str) -> list[ListEntry]:
        """Every entry of a subject, whatever its status, by ``listed_on``."""
        return await self._read(lambda db: entries.of_subject(db, uscc))

    # --- grades ---------------------------------------------------------------------

    async def put_grade(self, uscc: str, grade: Grade, actor: str) -> GradeResult:
        """Set a subject's grade (history and change row, unless identical)."""
        return await self.put_grades([(uscc, grade)], actor)

    async def put_grades(self, items: Sequence[tuple[str, Grade]], actor: str) -> GradeResult:
        """Set many subjects' grades in one transaction (for file imports)."""
        if not items:
            return GradeResult(0, 0, 0)
        return await self._write(lambda db: grades.put(db, items, actor))

    async def get_grade(self, uscc: str) -> Grade | None:
        return await self._read(lambda db: grades.get(db, uscc))

    # --- for the snapshot and the feed ----------------------------------------------

    async def live_rows(self, chunk: int = 10_000) -> AsyncIterator[LiveRows]:
        """Every live entry as a raw :data:`~gateway.model.EntryRecord` (what the packed
        snapshot keeps), by uscc, ``chunk`` rows at a time, with the grades of the codes up
        to each chunk's last (:func:`gateway.store.live.stream_rows`), all from one read
        transaction on a connection of its own (in WAL mode it holds back no writer).
        To build a consistent snapshot, take :meth:`last_change_seq` *before* iterating,
        then apply :meth:`changes_since` that seq.

        The chunks are read in the caller's thread (a worker's start, before it serves),
        one after the other with what is done with them: read in a thread beside the loop
        that packs them, the two threads took the GIL from each other at every row (sqlite3
        lets it go for each step): ten million entries were read and packed in 55 s that
        way, in 49 s one after the other (same machine, same minute).
        """
        if chunk < 1:
            raise ValueError("chunk must be at least 1")
        conn = live.scan_connection(self.path)
        chunks = live.stream_rows(conn, chunk)
        try:
            while (found := next(chunks, None)) is not None:
                yield found
        finally:
            _close_scan(conn, chunks)

    async def live_plan(self, parts: int, min_entries: int = 0) -> tuple[int, list[str]]:
        """For a build of the snapshot in ``parts`` processes: the number of live entries
        and the codes that cut them into parts of about as many (none for fewer than
        ``min_entries``): :func:`live.split_codes`."""

        def plan() -> tuple[int, list[str]]:
            conn = live.scan_connection(self.path)
            try:
                return live.split_codes(conn, parts, min_entries)
            finally:
                conn.close()

        return await asyncio.to_thread(plan)

    async def subjects(
        self, usccs: Sequence[str]
    ) -> dict[str, tuple[tuple[ListEntry, ...], Grade | None]]:
        """Live entries and grade of each subject; ``((), None)`` for one with nothing live."""
        if not usccs:
            return {}
        return await self._read(lambda db: live.of_subjects(db, usccs), snapshot=True)

    async def change_at(self, seq: int) -> str:
        """When change ``seq`` was made; "" if there is none (see :func:`live.change_at`)."""
        return await self._read(lambda db: live.change_at(db, seq))

    async def changes_since(self, seq: int, limit: int = 10_000) -> list[tuple[int, str]]:
        """``(seq, uscc)`` of the changes after ``seq``, oldest first."""
        return await self._read(lambda db: live.changes_since(db, seq, limit))

    async def bump_control(self, key: str, value: str, actor: str, audit_action: str = "") -> int:
        """Ask every worker to act on ``key`` (e.g. ``catalog``); the new generation. With
        an ``audit_action``, the audit log records it in the same transaction."""
        return await self._write(lambda db: control.bump(db, key, value, actor, audit_action))

    async def control_generation(self, key: str) -> tuple[int, str]:
        """``key``'s generation and value, (0, "") when never bumped."""
        return await self._read(lambda db: control.generation(db, key))

    async def last_change_seq(self) -> int:
        """The newest change's seq, 0 when there is none."""
        return await self._read(live.last_change_seq)

    # --- checks and feedback (written by CheckWriter) -------------------------------

    async def get_check(self, check_id: str) -> StoredCheck | None:
        return await self._read(lambda db: checks.get_check(db, check_id))

    async def get_feedback(self, check_id: str) -> FeedbackRecord | None:
        return await self._read(lambda db: checks.get_feedback(db, check_id))

    async def recent_checks(self, uscc: str, limit: int = 20) -> list[StoredCheck]:
        """The subject's latest checks, newest first."""
        return await self._read(lambda db: checks.recent_checks(db, uscc, limit))


async def _end(db: aiosqlite.Connection, statement: str) -> None:
    """COMMIT or ROLLBACK, if a transaction is still open once the queue reaches it."""
    try:
        await db.execute(statement)
    except sqlite3.OperationalError as exc:
        if "no transaction is active" not in str(exc):
            raise


def _close_scan(conn: sqlite3.Connection, chunks: Generator[object, None, None]) -> None:
    """End the scan's read transaction (closing its generator) and its connection."""
    chunks.close()
    conn.close()

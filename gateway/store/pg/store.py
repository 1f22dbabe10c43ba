"""The store on PostgreSQL: :class:`PgStore`, an asyncpg pool behind the methods of
:class:`gateway.store.Store` ported so far (``docs/postgresql.md`` lists them).

Every write is one READ COMMITTED transaction on a pool connection that first takes the
*log lock* (``pg_advisory_xact_lock(0x67617465, 2)``, until the commit), before any row
lock: writers that append to ``changes`` or ``audit_log`` take it there anyway (the
``changes_lock``/``audit_log_lock`` triggers), so taking it first means two writers never
hold a row each while waiting for the lock, and seq order is commit order. It also makes
the read-modify-writes (an entry's status, a key, a generation) see what the previous
writer committed, as SQLite's ``BEGIN IMMEDIATE`` does. A deadlock or serialization
failure (40P01, 40001) is retried. Reads go to any pool connection; snapshot reads run in
one REPEATABLE READ, READ ONLY transaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from datetime import date, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TypeVar

import asyncpg

from gateway.model import Caller, EntryInput, FeedbackRecord, Grade, ListEntry, StatusChange
from gateway.store import lifecycle as moves
from gateway.store.callers import KeyInForce, KeyLimits, normalize_scopes
from gateway.store.checks import StoredCheck
from gateway.store.entries import UpsertCounts, UpsertResult
from gateway.store.grades import GradeResult
from gateway.store.live import LiveRows
from gateway.store.pg import (
    audit,
    callers,
    checks,
    control,
    entries,
    grades,
    lifecycle,
    live,
    reports,
)
from gateway.store.pg.migrations import LOCK_NAMESPACE, LOG_LOCK, migrate
from gateway.store.pg.staging import apply_file
from gateway.store.reports import GroupBy

T = TypeVar("T")
_Work = Callable[[asyncpg.Connection], Awaitable[T]]

#: How many times a write transaction runs when it meets a deadlock or serialization failure.
WRITE_ATTEMPTS: Final = 5
_RETRIED: Final = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)


class PgStore:
    """What :class:`gateway.store.Store` keeps, in a PostgreSQL database shared by several
    nodes. Open with :meth:`open`; the same method names, arguments, results, errors and
    audit lines as ``Store`` for what is ported."""

    def __init__(self, pool: asyncpg.Pool, dsn: str, version: int) -> None:
        self._pool = pool
        self.dsn = dsn
        self._version = version

    @classmethod
    async def open(cls, dsn: str, *, min_size: int = 1, max_size: int = 8) -> PgStore:
        """Apply the missing migrations (:func:`gateway.store.pg.migrate`: safe when
        several nodes start at once), then open a pool of connections to ``dsn``."""
        version = await migrate(dsn)
        pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size)
        return cls(pool, dsn, version)

    @property
    def schema_version(self) -> int:
        return self._version

    async def close(self) -> None:
        await self._pool.close()

    async def __aenter__(self) -> PgStore:
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
        """Run ``work`` in one READ COMMITTED transaction holding the log lock from its
        start; commit, or roll back and raise (after retrying a deadlock or serialization
        failure: ``work`` must be safe to run again, as a rolled-back run left nothing)."""
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                async with (
                    self._pool.acquire() as conn,
                    conn.transaction(isolation="read_committed"),
                ):
                    await conn.execute(
                        "SELECT pg_advisory_xact_lock($1, $2)", LOCK_NAMESPACE, LOG_LOCK
                    )
                    return await work(conn)
            except _RETRIED:
                if attempt == WRITE_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _read(self, work: _Work[T], *, snapshot: bool = False) -> T:
        """Run ``work`` on a pool connection; with ``snapshot``, in one REPEATABLE READ,
        READ ONLY transaction so that all its queries see the same state."""
        async with self._pool.acquire() as conn:
            if not snapshot:
                return await work(conn)
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                return await work(conn)

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
        wanted = normalize_scopes(scopes)
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

    async def audit(self, **filters: Any) -> list[dict[str, Any]]:
        """Lines of the audit log (see :func:`gateway.store.audit.query`)."""
        return await self._read(lambda db: audit.query(db, **filters))

    # --- entries --------------------------------------------------------------------

    async def upsert_entries(self, rows: Sequence[EntryInput], actor: str) -> UpsertResult:
        """Import entries in one transaction (all or nothing), idempotent on (source, source_id)."""
        if not rows:
            return UpsertResult(0, 0, 0, [])
        return await self._write(lambda db: entries.upsert(db, rows, actor))

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
        """Every active entry with ``expires_on < today`` → expired; returns how many,
        one transaction per ``batch`` entries."""
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
        """Every live entry as a raw :data:`~gateway.model.EntryRecord`, by uscc, ``chunk``
        rows at a time, with the grades of the codes up to each chunk's last
        (:func:`gateway.store.pg.live.stream_rows`), from server-side cursors in one
        REPEATABLE READ, READ ONLY transaction on a pool connection held for the scan.
        To build a consistent snapshot, take :meth:`last_change_seq` *before* iterating,
        then apply :meth:`changes_since` that seq.
        """
        if chunk < 1:
            raise ValueError("chunk must be at least 1")
        async with (
            self._pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            async for found in live.stream_rows(conn, chunk):
                yield found

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

    # --- checks, feedback and the loop report (gateway.store.pg.checks, .reports) ------
    # Recorded by gateway.store.pg.checks.write_batch on the recorder's own connection;
    # indexed and rolled up by gateway.store.pg.maintenance.PgMaintenance.

    async def get_check(self, check_id: str) -> StoredCheck | None:
        return await self._read(lambda db: checks.get_check(db, check_id))

    async def get_feedback(self, check_id: str) -> FeedbackRecord | None:
        return await self._read(lambda db: checks.get_feedback(db, check_id))

    async def recent_checks(self, uscc: str, limit: int = 20) -> list[StoredCheck]:
        """The subject's latest checks, newest first (from one snapshot)."""
        return await self._read(lambda db: checks.recent_checks(db, uscc, limit), snapshot=True)

    async def loop_report(
        self, first: date, last: date, group_by: GroupBy, today: date, due_days: int
    ) -> list[dict[str, Any]]:
        """The loop report (see :mod:`gateway.store.reports`), from one snapshot."""
        return await self._read(
            lambda db: reports.loop_report(db, first, last, group_by, today, due_days),
            snapshot=True,
        )

    async def feedback_backlog(self, today: date, due_days: int) -> tuple[int, int]:
        """Checks needing feedback without any, and those overdue (rolled up so far)."""
        return await self._read(lambda db: reports.feedback_backlog(db, today, due_days))

    # --- staged imports (gateway.store.pg.staging) ----------------------------------

    async def apply_staging(
        self, path: Path, actor: str, chunk: int = 10_000
    ) -> AsyncIterator[tuple[int, UpsertCounts]]:
        """Apply a sealed :class:`~gateway.store.staging.StagingFile`, ``chunk`` row numbers
        per transaction; yields the rows applied so far and what the chunk did (one audit
        line per chunk that inserted or updated anything), as ``Store.apply_staging``.

        A failure leaves the chunks before it applied; applying the same rows again
        finishes the job (idempotent on (source, source_id)).
        """
        async for applied in apply_file(self._write, path, actor, chunk):
            yield applied

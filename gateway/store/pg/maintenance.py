"""Background upkeep of the recorded checks on PostgreSQL: :class:`PgMaintenance`.

What :class:`gateway.store.Maintenance` does for SQLite, on the worker's event loop (the
recorder awaits it) with a connection of its own, opened by the first call (or at once
with ``await PgMaintenance.open(dsn)``):

* :meth:`PgMaintenance.index_subjects` copies ``(day, uscc, check_id)`` of checks past
  the watermark into ``subject_checks``, sorted, up to ``limit`` a transaction;
* :meth:`PgMaintenance.roll_up_loop` adds checks and feedback past their watermarks to
  ``loop_daily`` (:func:`gateway.store.pg.reports.roll_up`).

There is no checkpoint: PostgreSQL checkpoints itself, and no write of the upkeep holds
up a recorder's commit (the recorders share the recording lock, the upkeep takes none of
their rows). Two things differ from SQLite, where writers take turns:

* a watermark moves at most to ``gateway_committed_rowid(...)``, not ``max(rowid)``: a
  batch another node is still committing may hold a lower rowid than one already
  committed, and it would be skipped for good;
* several nodes may run it at once: each step is one READ COMMITTED transaction that
  first locks the watermark's row (``FOR UPDATE``) and reads it then, so a second node
  waits and continues from where the first left off; no row is indexed or counted twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Final

import asyncpg

from gateway.store.maintenance import TRICKLE_AFTER, under_load_budget
from gateway.store.pg import reports
from gateway.store.reports import pending_sql

#: Checks indexed (or rolled up) per step: PostgreSQL's steps hold no lock that the
#: recorder's commits wait for (SQLite's do: ``gateway.store.maintenance.STEP``).
STEP: Final = 500

_INDEX: Final = """
INSERT INTO subject_checks (day, uscc, check_id)
SELECT substr(checked_at, 1, 10)::date, uscc, check_id FROM checks
WHERE rowid > $1 AND rowid <= $2 ORDER BY 1, 2, 3
ON CONFLICT DO NOTHING
"""


class PgMaintenance:
    """The upkeep of one worker, on its own connection to ``dsn`` (not for concurrent use:
    one coroutine at a time, as the recorder runs it)."""

    #: Checks indexed (or rolled up) per step, in a lull and while checks are recorded (no
    #: lock to hold briefly: the same steps).
    step: Final = STEP
    trickle_step: Final = STEP
    #: Checks indexed by subject per step in a lull (as SQLite's, see there).
    index_step: int = STEP

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._conn: asyncpg.Connection | None = None

    @classmethod
    async def open(cls, dsn: str) -> PgMaintenance:
        """Connect now rather than on the first call (e.g. to fail at start if the database
        cannot be reached)."""
        upkeep = cls(dsn)
        await upkeep._connect()
        return upkeep

    async def _connect(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(self.dsn)
        return self._conn

    async def index_subjects(self, limit: int = 1_000) -> int:
        """Index up to ``limit`` newly recorded checks by subject; how many were indexed."""
        conn = await self._connect()
        async with conn.transaction(isolation="read_committed"):
            mark = int(
                await conn.fetchval(
                    "SELECT last_rowid FROM subject_checks_mark WHERE id = 1 FOR UPDATE"
                )
            )
            rows, upto = await reports.next_rows(conn, "checks", mark, limit)
            if upto > mark:
                if rows:
                    await conn.execute(_INDEX, mark, upto)
                await conn.execute(
                    "UPDATE subject_checks_mark SET last_rowid = $1 WHERE id = 1", upto
                )
        return rows

    async def roll_up_loop(self, limit: int = 2_000) -> int:
        """Roll up to ``limit`` checks and ``limit`` feedback into ``loop_daily``; how many
        rows were rolled up (one transaction)."""
        conn = await self._connect()
        async with conn.transaction(isolation="read_committed"):
            checks = await reports.roll_up(conn, "checks", limit)
            return checks + await reports.roll_up(conn, "feedback", limit)

    async def pending(self) -> int:
        """Checks (or feedback) recorded but not yet indexed by subject or rolled up: rowids
        past the watermarks, so an upper bound where identities skipped (rolled-back
        batches)."""
        conn = await self._connect()
        subjects = await conn.fetchval(
            "SELECT coalesce((SELECT max(rowid) FROM checks), 0) - "
            "(SELECT last_rowid FROM subject_checks_mark WHERE id = 1)"
        )
        checks = await conn.fetchval(pending_sql("checks"))
        feedback = await conn.fetchval(pending_sql("feedback"))
        return max(int(subjects), int(checks), int(feedback))

    async def run_once(
        self,
        *,
        busy: bool | Callable[[], bool] = False,
        backlog: int = 1_000_000,
        pause: float = 0.005,
        trickle_after: int = TRICKLE_AFTER,
    ) -> int:
        """Index and roll up what is pending; how many checks were indexed.

        As :meth:`gateway.store.Maintenance.run_once` (whose docstring says why), without
        the checkpoint: while checks are being recorded (``busy``, a flag or a probe asked
        between steps) nothing is done unless more than ``trickle_after`` checks are pending;
        a lull's work goes in steps of :data:`STEP` and
        stops as soon as checks are recorded again, by this worker (the probe) or any
        other (the checks table grew); past ``trickle_after``, the same steps with a
        ``pause`` after each, for at most :data:`~gateway.store.maintenance.TRICKLE_SECONDS`
        a tick, and past
        ``backlog`` half a second. The pauses are ``asyncio.sleep``: the event loop
        serves requests meanwhile.
        """
        probe = busy if callable(busy) else (lambda: busy)
        total = 0
        if not probe():
            mark = await self._last_check()
            while (done := await self.index_subjects(self.index_step)) > 0:
                total += done
                if await self._recording_again(probe, mark):
                    return total
                await asyncio.sleep(pause / 5)
            while await self.roll_up_loop(self.step) > 0:
                if await self._recording_again(probe, mark):
                    return total
                await asyncio.sleep(pause / 5)
            return total
        budget = under_load_budget(await self.pending(), backlog, trickle_after)
        if budget is not None:
            deadline = time.monotonic() + budget
            while True:
                done = await self.index_subjects(self.trickle_step)
                rolled = await self.roll_up_loop(self.trickle_step)
                total += done
                if (not done and not rolled) or time.monotonic() >= deadline:
                    break
                await asyncio.sleep(pause)
        return total

    async def _last_check(self) -> int:
        conn = await self._connect()
        return int(await conn.fetchval("SELECT coalesce(max(rowid), 0) FROM checks"))

    async def _recording_again(self, probe: Callable[[], bool], mark: int) -> bool:
        """Whether checks are being recorded again: by this worker, or by another."""
        return probe() or await self._last_check() != mark

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

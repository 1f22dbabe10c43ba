"""Background upkeep of the recorded checks, off the commit path (SQL).

Run by the recorder's maintenance thread on its own connection, every second,
indexing only when no check was recorded for a moment (or the backlog grows):

* :meth:`Maintenance.index_subjects` copies ``(day, uscc, check_id)`` of
  checks recorded since the watermark into ``subject_checks``, sorted, in
  steps of :data:`INDEX_STEP` per transaction, in the index's own file
  (``gateway.store.subject_index``), so that no step holds the database's write lock;
* :meth:`Maintenance.roll_up_loop` adds checks and feedback recorded since their
  watermarks to the daily counts the loop reports read (``gateway.store.reports``);
* :meth:`Maintenance.checkpoint` runs a passive WAL checkpoint of the database and of
  the index, whose write-back is paced so that it does not stall the log's fsyncs
  (``gateway.store.checkpoint``; the writers' automatic checkpoint is off so that no group
  commit pays for one).

Several workers may run it at once: each step is one ``BEGIN IMMEDIATE``
transaction that reads the watermark it moves, so no row is indexed twice.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from gateway.store import checkpoint as wal_checkpoint
from gateway.store import reports, schema, subject_index

#: Bytes of WAL past which the upkeep checkpoints under load too. The checkpoint is paced
#: (``gateway.store.checkpoint``), so a small limit costs nothing measurable (1 worker,
#: ``FULL``, 2 x 2 runs: 0.604 / 0.650 of the floor with 1 GiB, 0.650 / 0.625 with 64 MiB)
#: and no checkpoint has a gigabyte to copy; with SQLite's own checkpoint 256 MiB cost 14 %.
WAL_LIMIT: Final = 64 * 1024 * 1024
#: Checks indexed (or rolled up) per step on SQLite, in a lull or trickling: a step holds
#: the database's write lock, which the recorder's commits wait for, and indexing costs
#: some 30-40 µs a check once the day's part of the index is large (each check touches
#: its own page: 500 000 checks of one day here, steps of 500 took 9-11 ms, steps of 100
#: 1.5-1.9 ms for the same cost a check). Steps of 100 took the p99 of a paced half load
#: from 12-27 ms to 5-6 ms (``NORMAL``, where the log's fsync does not hide it; measured
#: with the steps' commits unsynced, since undone: see ``_connect``).
STEP: Final = 100
#: Checks indexed by subject a step in a lull. The index has a file of its own, whose
#: lock no commit of a check waits for, so its steps may be large; the larger, the more
#: checks each page of the index takes before it is written (a day's part of 400,000
#: checks: 33.5 µs and 6.4 KB of log a check in steps of 100, 18.0 µs and 3.7 KB in 2,000,
#: 5.7 µs and 0.9 KB in 20,000). While checks are recorded it goes in steps of
#: ``TRICKLE_STEP`` all the same: a step holds a core, and the disk, as long as it lasts
#: (paced half load: steps of 5,000 put 105-119 checks past 25 ms of server time, 1,000
#: put 32, 200 none past 10 ms but 54 past 7.5 ms, and 25 none past 7.5 ms).
INDEX_STEP: Final = 20_000
#: Checks a step while checks are being recorded (trickling, or past the backlog), rolled
#: up and indexed: a commit of the recorder that finds the write lock held by a roll-up
#: step waits for the rest of it, and an index step holds a core and the disk while it
#: lasts. Measured when the index was in the database, whose lock its steps held too:
#: each check cost the same in steps of 25 as of 100 (its own page of the index), and a
#: paced half load, 1 worker, alternating, had 393-483 checks over 5 ms of server time
#: with steps of 100, 81-180 with 25 (client p99 5.5-6.1 against 4.2-4.8 ms).
TRICKLE_STEP: Final = 25
#: Under load, past this many checks not yet indexed or rolled up, the upkeep trickles:
#: up to ``TRICKLE_SECONDS`` of steps a tick. Without it a steady load that never leaves
#: a worker idle for ``IDLE_AFTER`` (a check every quarter second is enough) left
#: everything for the ``backlog`` (1,000,000: hours of a business day at a few dozen
#: checks a second), and every loop report and subject's recent checks scanned that
#: tail (about 6 µs a check: seconds per report by the afternoon).
TRICKLE_AFTER: Final = 20_000
#: Seconds of steps a tick while trickling (3 % of the upkeep's second: steps of 100 on
#: SQLite, index and roll-up, with a millisecond between them for the commits waiting:
#: about 1,000 checks a tick on a quiet machine here, 350-400 under a paced half load).
TRICKLE_SECONDS: Final = 0.03
#: Seconds of steps a tick past the backlog.
BACKLOG_SECONDS: Final = 0.5


def under_load_budget(pending: int, backlog: int, trickle_after: int) -> float | None:
    """Seconds of indexing and rolling up a tick of the upkeep may spend while checks are
    being recorded (at least one step is done); None: wait for a lull."""
    if pending > backlog:
        return BACKLOG_SECONDS
    if pending > trickle_after:
        return TRICKLE_SECONDS
    return None


class Maintenance:
    #: Checks rolled up per step, in a lull; rolled up and indexed, while checks are recorded.
    step: Final = STEP
    trickle_step: Final = TRICKLE_STEP
    #: Checks indexed by subject per step in a lull (set smaller on an instance in tests).
    index_step: int = INDEX_STEP

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 10_000) -> None:
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms
        self._conn: sqlite3.Connection | None = None
        self._index: sqlite3.Connection | None = None
        self._checkpoints = (
            wal_checkpoint.Paced(self.path),
            wal_checkpoint.Paced(subject_index.path_for(self.path)),
        )

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 0")
            # Each step syncs its own frames of the log (0.3-0.4 ms a step here): left to
            # the recorder's next fsync, a lull's steps over a backlog leave hundreds of MB
            # of the log unwritten for the first checks after it to wait for (commits
            # acknowledged 0.1-1 s late were seen so, twice).
            conn.execute("PRAGMA synchronous = FULL")
            # Nor SQLite's own checkpoint after the commit of a step once the log holds
            # 1,000 pages (the default, always the case under load): an unpaced copy of
            # the whole log and an fsync of the database file after every step, whose
            # writes held up the recorder's fsync of the log (10-25 ms added to each
            # step here). The paced checkpoint (:meth:`checkpoint`) is the only one.
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            self._conn = conn
        return self._conn

    def _index_conn(self) -> sqlite3.Connection:
        if self._index is None:
            subject_index.ensure(self.path, self.busy_timeout_ms)
            self._index = subject_index.connect_upkeep(self.path)
        return self._index

    def index_subjects(self, limit: int = 1_000) -> int:
        """Index up to ``limit`` newly recorded checks by subject; how many were indexed.

        One INSERT ... SELECT in the index's file: SQLite does the work without the GIL,
        and holds no lock of the database meanwhile."""
        return subject_index.index_step(self._index_conn(), limit, self.busy_timeout_ms)

    def roll_up_loop(self, limit: int = 2_000) -> int:
        """Roll up to ``limit`` checks and ``limit`` feedback into ``loop_daily``; how many
        rows were rolled up (one transaction, inside SQLite)."""
        conn = self._connect()
        schema.begin_immediate(conn, self.busy_timeout_ms)
        try:
            done = reports.roll_up(conn, "checks", limit) + reports.roll_up(conn, "feedback", limit)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return done

    def checkpoint(self) -> tuple[int, int]:
        """Passive WAL checkpoints of the database and of the index, written back in paced
        steps: the database's (frames in the WAL, frames copied to the file)."""
        database, index = self._checkpoints
        self._index_conn()  # the index's file exists
        index.run()
        return database.run()

    def pending(self) -> int:
        """Checks (or feedback) recorded but not yet indexed by subject or rolled up."""
        conn = self._connect()
        (checks,) = conn.execute(reports.pending_sql("checks")).fetchone()
        (feedback,) = conn.execute(reports.pending_sql("feedback")).fetchone()
        return max(subject_index.pending(self._index_conn()), int(checks), int(feedback))

    def run_once(
        self,
        *,
        busy: bool | Callable[[], bool] = False,
        backlog: int = 1_000_000,
        pause: float = 0.005,
        wal_limit: int = WAL_LIMIT,
        trickle_after: int = TRICKLE_AFTER,
    ) -> int:
        """Checkpoint, index and roll up what is pending; how many checks were indexed.

        The checkpoint, too, waits for a lull unless the WAL has grown past
        ``wal_limit`` bytes: run under load, its writes and its fsync of the database
        file held up the recorder's fsync of the log (paced at half load: p99 117 ms
        with a checkpoint every second, 9 ms without).

        While checks are being recorded (``busy``: a flag, or a probe of this worker's
        recorder asked again between steps), indexing waits for a lull: done under load
        it cost a quarter of a worker's throughput and put 30-80 ms into its p99 (the
        approval counters of a province have their lulls, at noon and at night). A lull's
        work goes in steps and **stops as soon as checks are recorded again**, by this
        worker (the probe) or by any other (the checks table grew since the last step):
        run to the end after a pause in the load, the steps held the write lock back to
        back while the load came back and starved the other workers' commits (2 workers
        paced at half load: p99 440-670 ms, 5-7.5 ms with it stopped). After each step
        ``pause``/5 lets a waiting commit take the lock. Readers scan the unindexed tail,
        so it stays bounded: beyond ``trickle_after`` pending checks indexing and roll-ups
        go on under load too, in steps of :data:`TRICKLE_STEP` with ``pause``/5 after each, for at
        most :data:`TRICKLE_SECONDS` a tick, and beyond ``backlog`` (two minutes of saturating
        load) for at most half a second.
        """
        probe = busy if callable(busy) else (lambda: busy)
        total = 0
        if not probe():
            mark = self._last_check()
            while (done := self.index_subjects(self.index_step)) > 0:
                total += done
                if self._recording_again(probe, mark):
                    return total
                self._bound_log(wal_limit)
                time.sleep(pause / 5)
            while self.roll_up_loop(self.step) > 0:
                if self._recording_again(probe, mark):
                    return total
                self._bound_log(wal_limit)
                time.sleep(pause / 5)
            if self._recording_again(probe, mark):
                return total
            self.checkpoint()
            return total
        budget = under_load_budget(self.pending(), backlog, trickle_after)
        if budget is not None:
            deadline = time.monotonic() + budget
            while True:
                done = self.index_subjects(self.trickle_step)
                rolled = self.roll_up_loop(self.trickle_step)
                total += done
                if (not done and not rolled) or time.monotonic() >= deadline:
                    break
                time.sleep(pause / 5)
        self._bound_log(wal_limit)
        return total

    def _bound_log(self, wal_limit: int) -> None:
        """Checkpoint a log (the database's, the index's) once past ``wal_limit``: a lull's
        steps over a large backlog would otherwise grow it by gigabytes, all of it to be
        copied by one checkpoint that the load may come back in the middle of."""
        for paced in self._checkpoints:
            if wal_checkpoint.log_in_use(paced.path) > wal_limit:
                paced.run()

    def _last_check(self) -> int:
        (last,) = self._connect().execute("SELECT coalesce(max(rowid), 0) FROM checks").fetchone()
        return int(last)

    def _recording_again(self, probe: Callable[[], bool], mark: int) -> bool:
        """Whether checks are being recorded again: by this worker, or by another."""
        return probe() or self._last_check() != mark

    def wal_bytes(self) -> int:
        """Bytes of the write-ahead log in use since its last restart (0 if none)."""
        return wal_checkpoint.log_in_use(self.path)

    def close(self) -> None:
        for conn in (self._conn, self._index):
            if conn is not None:
                conn.close()
        self._conn = self._index = None
        for paced in self._checkpoints:
            paced.close()

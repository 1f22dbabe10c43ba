"""Checks inserted into the store behind their frames, many turns in one transaction.

With a record log, a turn's checks are durable once their frame is written (see
``gateway.recordlog``); they need not be in SQLite to be answered. The recorder then
hands them here, and they are inserted ``delay`` seconds later (10 ms by default,
``GATEWAY_STORE_DELAY_MS``), with every check framed meanwhile, in one transaction:
at full load one commit for ten or more turns instead of one each. Measured on the
development machine (docs/performance.md, session 14): with two workers, whose commits
otherwise find the write lock held by the other one turn in six and wait for it, 1.2 ×
the throughput and a shorter tail; with one worker 1.07 × and less CPU a check.

What is held here is durable (its frame is written) and not yet in the store:

* **Reads see it.** :meth:`StoreBehind.get` gives a check held here by its id (the
  worker's own reads: ``Runtime.find_check``); a check held by another worker is in
  the store ``delay`` seconds later, and a reader that misses a check made in the last
  second waits for it (``gateway.runtime``).
* **Feedback** is inserted at once, by the loop, with everything held here (its check may
  be among them, and its answer, new or not, needs the store):
  :meth:`StoreBehind.insert_with`; while the inserter inserts, it waits (as for a lock
  held elsewhere), so that no check is inserted twice.
* **Nothing is written over before it is stored.** The record log counts a frame as
  covered only once it is told its records are in the store
  (:meth:`gateway.recordlog.RecordLog.stored_through`), and calls
  :meth:`StoreBehind.store_blocking` before it fsyncs the store itself (a full ring);
  the recorder calls it too before it closes the log. After a crash, the records of the
  frames not covered are given to the store again, as before.
* **Inserted beside the loop.** The insert is made by a thread of its own (the
  **inserter**), on its own connection: the loop hands it what it holds and goes on.
  SQLite's work (the B-tree inserts of a multi-row statement, the commit) runs without
  the GIL, on the other core; only the binding of the values takes it. Measured
  (docs/performance.md, session 15): 1.10 × the throughput at one worker, 1.02-1.05 at
  two, against inserting in the loop's thread. What is framed during an insert stays
  held, readable, and goes in the next one, which is scheduled when this one is over.
* **The lock held elsewhere** (the other worker's commit, a step of the upkeep) delays
  the insert, not the answer: the inserter waits for it. Held checks are
  bounded by the ring (:attr:`StoreBehind.full`: one check a block, half the ring), so
  that their frames never fill it: past that, the recorder inserts each turn's checks
  before their frame again, and a turn waits for the lock as it did without holding.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Final

from gateway.model import CheckRecord, FeedbackRecord
from gateway.recordframes import BLOCK
from gateway.recording import InlineWriter
from gateway.recordlog import RecordLog

log = logging.getLogger(__name__)

#: Checks held that are inserted without waiting for ``delay`` (a batch check, say).
MOST: Final = 1000


class StoreBehind:
    """The checks of one worker framed and not yet in the store. Its methods are for the
    event loop's thread; the inserter thread runs :meth:`_insert` alone."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        store: InlineWriter,
        record_log: RecordLog,
        delay: float,
        inserter: Callable[[], InlineWriter],
    ) -> None:
        self._loop = loop
        self._store = store
        #: The inserter thread: its own connection (``inserter()``, opened there), and the
        #: insert it is doing (its checks stay held, readable, until it is over).
        self._open_inserter = inserter
        self._inserter: InlineWriter | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="store-behind")
        self._inserting: tuple[Future[None], list[CheckRecord], int] | None = None
        self._log = record_log
        self._delay = delay
        #: Checks held at most: a frame takes at least a block, and the held checks' frames
        #: must leave the ring room (the other half: frames the store's fsync has not
        #: covered yet), or writing on would wait for their insert in the loop's thread.
        self._cap = max(1, record_log.ring_bytes // (2 * BLOCK))
        self._most = min(MOST, self._cap)
        self._held: dict[str, CheckRecord] = {}
        self._frame = 0  # the last frame whose checks are held
        self._timer: asyncio.TimerHandle | None = None
        record_log.store_pending = self.store_blocking
        #: Checks ever held, and ever inserted (an insert takes all held before it:
        #: ``inserted`` reaches what ``held_total`` was).
        self.held_total = 0
        self.inserted = 0
        #: Why the last insert failed, until one succeeds ("" when none has failed).
        self.error = ""

    def __len__(self) -> int:
        return len(self._held)

    @property
    def full(self) -> bool:
        """Whether no more checks may be held (the recorder inserts before framing)."""
        return len(self._held) >= self._cap

    def get(self, check_id: str) -> CheckRecord | None:
        """The check ``check_id`` if it is held here (framed, not yet in the store)."""
        return self._held.get(check_id)

    def hold(self, checks: list[CheckRecord]) -> None:
        """Hold ``checks`` until they are inserted (before their frame is written)."""
        for check in checks:
            self._held[check.check_id] = check
        self.held_total += len(checks)

    def framed(self, number: int) -> None:
        """The frame ``number`` (0: none, the store was fsynced instead) holds the checks
        given to :meth:`hold` so far: insert them soon."""
        if not self._held:
            if number:
                self._log.stored_through(number)
            return
        if number:
            self._frame = number
        if self._inserting is not None:
            return  # when the insert under way is over, the next one is scheduled
        if len(self._held) >= self._most:
            self._schedule(0)
        elif self._timer is None:
            self._schedule(self._delay)

    def insert_with(
        self, checks: list[CheckRecord], feedback: list[FeedbackRecord]
    ) -> list[bool] | None:
        """Insert every check held, ``checks`` and ``feedback`` in one transaction now,
        unless the lock is held elsewhere or the inserter thread is inserting (None:
        nothing inserted). For each feedback, True if it is new."""
        if self._inserting is not None:
            return None
        inserted = self._store.try_write([*self._held.values(), *checks], feedback)
        if inserted is not None and self._held:
            self._inserted(list(self._held.values()), self._frame)
        return inserted

    def store(self) -> None:
        """Hand every check held to the inserter thread (the timer's callback), unless it
        is inserting already: the next insert is scheduled when that one is over."""
        self._timer = None
        if not self._held or self._inserting is not None:
            return
        checks = list(self._held.values())
        future = self._thread.submit(self._insert, checks)
        self._inserting = future, checks, self._frame
        future.add_done_callback(self._told_over)

    def store_blocking(self) -> None:
        """Insert every check held now, waiting for the inserter thread's insert and for
        the lock if need be (the record log is about to fsync the store, or to close)."""
        if self._inserting is not None:
            wait([self._inserting[0]])
            self._over(self._inserting[0])
        if not self._held:
            return
        checks = list(self._held.values())
        self._store.write(checks, [])
        self._inserted(checks, self._frame)

    def close(self) -> None:
        """Stop the inserter thread (after its insert, if any) and close its connection."""
        self._thread.shutdown(wait=True)
        if self._inserter is not None:
            self._inserter.close()
            self._inserter = None

    def _insert(self, checks: list[CheckRecord]) -> None:
        """In the inserter thread: insert ``checks`` in one transaction, waiting for the
        lock (SQLite's work is done without the GIL, beside the event loop)."""
        if self._inserter is None:
            self._inserter = self._open_inserter()
        self._inserter.write(checks, [])

    def _told_over(self, future: Future[None]) -> None:
        """In the inserter thread: its insert is over; the loop's thread is told (unless
        it is closed: then nothing waits for it)."""
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._over, future)

    def _over(self, future: Future[None]) -> None:
        """The inserter thread's insert is over (in the loop's thread)."""
        if self._inserting is None or self._inserting[0] is not future:
            return  # told already (store_blocking waited for it)
        _, checks, frame = self._inserting
        self._inserting = None
        error = future.exception()
        if error is not None:  # they stay held (and framed): tried again, recovered at worst
            log.error("%d checks not inserted into the store yet: %s", len(checks), error)
            self.error = f"{type(error).__name__}: {error}"
            self._schedule(max(self._delay, 0.1))
            return
        self._inserted(checks, frame)
        if self._held:
            self._schedule(0 if len(self._held) >= self._most else self._delay)

    def _inserted(self, checks: list[CheckRecord], frame: int) -> None:
        """``checks``, every check held up to the frame ``frame``, are in the store."""
        self.error = ""
        self.inserted += len(checks)
        for check in checks:
            del self._held[check.check_id]
        if self._timer is not None and not self._held:
            self._timer.cancel()
            self._timer = None
        if frame:
            self._log.stored_through(frame)

    def _schedule(self, delay: float) -> None:
        if self._timer is not None:
            if delay:
                return
            self._timer.cancel()
        self._timer = self._loop.call_later(delay, self.store)

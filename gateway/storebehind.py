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
* **Feedback** is inserted at once, with everything held here (its check may be among
  them, and its answer, new or not, needs the store): :meth:`StoreBehind.insert_with`.
* **Nothing is written over before it is stored.** The record log counts a frame as
  covered only once it is told its records are in the store
  (:meth:`gateway.recordlog.RecordLog.stored_through`), and calls
  :meth:`StoreBehind.store_blocking` before it fsyncs the store itself (a full ring);
  the recorder calls it too before it closes the log. After a crash, the records of the
  frames not covered are given to the store again, as before.
* **The lock held elsewhere** (the other worker's commit, a step of the upkeep) delays
  the insert, not the answer: it is tried again ``RETRY`` seconds later. Held checks are
  bounded by the ring (:attr:`StoreBehind.full`: one check a block, half the ring), so
  that their frames never fill it: past that, the recorder inserts each turn's checks
  before their frame again, and a turn waits for the lock as it did without holding.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final, Protocol

from gateway.model import CheckRecord, FeedbackRecord
from gateway.recordframes import BLOCK
from gateway.recordlog import RecordLog

log = logging.getLogger(__name__)

#: Seconds before an insert is tried again when the write lock is held elsewhere.
RETRY: Final = 0.0005
#: Checks held that are inserted without waiting for ``delay`` (a batch check, say).
MOST: Final = 1000


class Inserts(Protocol):
    def try_write(
        self, checks: list[CheckRecord], feedback: list[FeedbackRecord]
    ) -> list[bool] | None: ...

    def write(self, checks: list[CheckRecord], feedback: list[FeedbackRecord]) -> list[bool]: ...


class StoreBehind:
    """The checks of one worker framed and not yet in the store. Event loop thread only."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        store: Inserts,
        record_log: RecordLog,
        delay: float,
    ) -> None:
        self._loop = loop
        self._store = store
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
        if len(self._held) >= self._most:
            self._schedule(0)
        elif self._timer is None:
            self._schedule(self._delay)

    def insert_with(
        self, checks: list[CheckRecord], feedback: list[FeedbackRecord]
    ) -> list[bool] | None:
        """Insert every check held, ``checks`` and ``feedback`` in one transaction now,
        unless the lock is held elsewhere (None: nothing inserted). For each feedback, True
        if it is new."""
        inserted = self._store.try_write([*self._held.values(), *checks], feedback)
        if inserted is not None and self._held:
            self._inserted(self._frame)
        return inserted

    def store(self) -> None:
        """Insert every check held (the timer's callback); later if the lock is busy."""
        self._timer = None
        if not self._held:
            return
        frame = self._frame
        try:
            inserted = self._store.try_write(list(self._held.values()), [])
        except Exception as exc:  # they stay held (and framed): tried again, recovered at worst
            log.error("%d checks not inserted into the store yet: %s", len(self._held), exc)
            self.error = f"{type(exc).__name__}: {exc}"
            self._schedule(max(self._delay, 0.1))
            return
        if inserted is None:
            self._schedule(RETRY)
            return
        self._inserted(frame)

    def store_blocking(self) -> None:
        """Insert every check held now, waiting for the lock if need be (the record log is
        about to fsync the store, or to close)."""
        if not self._held:
            return
        self._store.write(list(self._held.values()), [])
        self._inserted(self._frame)

    def _inserted(self, frame: int) -> None:
        self.error = ""
        self.inserted += len(self._held)
        self._held.clear()
        if self._timer is not None:
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

"""The record log: a worker's checks and feedback made durable by one small write each turn.

The recorder commits a turn's records into SQLite without an fsync (``synchronous =
NORMAL``: in the store's write-ahead log, in the operating system's cache) and then
hands them here. :meth:`RecordLog.write` writes them as one **frame** to the worker's
own file with ``O_DSYNC`` (and ``O_DIRECT`` where the file system allows): when it
returns, the records are on disk, and the callers may be answered.

Why not fsync SQLite's own log, as ``synchronous = FULL`` does (and as the sync process
did, once for many commits)? A commit of ten checks writes about seven 4 KiB pages of
B-tree into SQLite's log, to a file that grows until the next checkpoint, and its
``fdatasync`` must also commit the file's size to the file system's journal. A frame
here is the records alone (a few KiB for ten checks), written over a file already
allocated, in place: no metadata changes, one write that is durable when it returns.
Measured on the development machine: 83 µs median for such a write against 199 µs for
an append and ``fdatasync``, and with no hand-off to another process to wait for
(see docs/performance.md). The frame format and its reading: ``gateway.recordframes``.

**A ring.** The file is written round and round. A frame may be written over only once
its records are durable in the store itself: a thread of the log's own (the **store
syncer**) fsyncs SQLite's log every ``sync_interval`` seconds while frames are written,
and then counts every frame whose records were in the store before that fsync began as
**covered**. A frame's records are in the store when it is written, or, when the writer
says so (``stored=False``: ``gateway.storebehind`` inserts checks a few milliseconds
behind their frames), once :meth:`RecordLog.stored_through` is told; before any fsync of
its own (a full ring, a frame that cannot be written) the log calls ``store_pending`` so
that the writer inserts what it still holds. Each frame
carries its number (ever increasing) and the highest number covered when it was written.
Should the ring fill with frames not yet covered (the store's disk far behind), the
loop's thread fsyncs SQLite's log itself before writing on (``stalls`` counts it).

**Recovery.** Every whole frame in the file (magic, CRC-32 of its header and records)
is read; the highest "covered" among them says which are durable in the store already;
the records of the others are given to the store again (``restore``: records already
there are left as they are), in order. A frame torn by a crash was never acknowledged
(its write had not returned) and fails its CRC. A **marker** frame, covering itself, is
then written at the file's start: nothing before it is recovered again. A clean
:meth:`RecordLog.close` syncs the store and writes one too.

**Slots.** Every worker writes its own file, ``slot-<n>.log`` in the records directory,
held with ``flock`` while it runs; opening one recovers every slot no one holds, and the
directory is bound to its store (``gateway.recordslots``).

If a frame cannot be written (an I/O error, or records too many for the ring) the loop
fsyncs SQLite's log instead: the records are durable all the same, the slower way.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Final

from gateway.model import CheckRecord, FeedbackRecord
from gateway.recordframes import (
    BLOCK,
    EMPTY,
    HEADER_SIZE,
    Frame,
    Restore,
    encode,
    open_direct,
    padded,
    write_frame,
)
from gateway.recordslots import take_slot

log = logging.getLogger(__name__)

#: Seconds between two fsyncs of the store by the store syncer, while frames are written.
SYNC_INTERVAL: Final = 0.05


class RecordLog:
    """One worker's slot: open with :meth:`open`, :meth:`write` each turn, :meth:`close`.

    ``write`` is for one thread (the event loop's); the store syncer is the other."""

    def __init__(
        self,
        path: Path,
        lock: int,
        ring_bytes: int,
        sync_store: Callable[[], None],
        last: int = 0,
        sync_interval: float = SYNC_INTERVAL,
    ) -> None:
        if ring_bytes < 2 * BLOCK:
            raise ValueError(f"a ring of {ring_bytes} bytes is too small")
        self.path = path
        self._lock = lock
        self._fd = open_direct(path)
        self._ring = ring_bytes - ring_bytes % BLOCK
        self._sync_store = sync_store
        self._buffer = mmap.mmap(-1, 16 * BLOCK)  # page-aligned, as O_DIRECT needs
        #: Frames written so far are numbered up to ``_number``; up to ``_covered`` they are
        #: durable in the store (set by the store syncer's thread, read here).
        self._number = self._covered = self._stored = last
        #: Called before the log fsyncs the store itself: whoever writes frames of records
        #: not yet in the store (``stored=False``) inserts them there (see the module's doc).
        self.store_pending: Callable[[], None] = _nothing
        self._head = 0  # where the next frame goes, counted from the first lap's start
        self._uncovered: deque[tuple[int, int]] = deque()  # (number, head) of each frame
        #: Frames written, batches made durable by the store's fsync instead, and writes
        #: that had to fsync the store first (the ring full of frames not yet covered).
        self.frames = 0
        self.store_syncs = 0
        self.stalls = 0
        self._mark()
        self._interval = sync_interval
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._syncer = threading.Thread(target=self._sync_loop, name="record-log-sync", daemon=True)
        self._syncer.start()

    @property
    def covered(self) -> int:
        """Frames numbered up to this are durable in the store."""
        return self._covered

    @property
    def ring_bytes(self) -> int:
        """The ring's size: what frames not yet covered may take at most."""
        return self._ring

    @classmethod
    def open(
        cls,
        directory: Path,
        *,
        store: str,
        ring_bytes: int,
        sync_store: Callable[[], None],
        restore: Restore,
        sync_interval: float = SYNC_INTERVAL,
    ) -> RecordLog:
        """Take the first free slot of ``directory``, after recovering it and every other
        free slot into the store (``restore``), whose identity is ``store``."""
        return take_slot(
            directory,
            store,
            restore,
            lambda path, lock, last: cls(path, lock, ring_bytes, sync_store, last, sync_interval),
        )

    def write(
        self, checks: list[CheckRecord], feedback: list[FeedbackRecord], *, stored: bool = True
    ) -> int:
        """Make the records durable: one frame in the log, or else an fsync of the store's
        log (``store_pending`` first, unless ``stored``: the records are committed there
        already). The frame's number; 0 if the records went by the store's fsync instead
        (they are then in the store). Raises only if neither can be done."""
        records = encode(Frame(checks, feedback))
        size = padded(HEADER_SIZE + len(records))
        if size > self._ring:
            self._store_sync()
            return 0
        start = self._place(size)
        if not self._fits(start + size):
            self._stall()
        try:
            self._put(start, self._number + 1, self._covered, records, size)
        except OSError as exc:
            log.error("record log %s: %s; the store's log is fsynced instead", self.path, exc)
            self._store_sync()
            return 0
        self._number += 1
        self._uncovered.append((self._number, start))
        self._head = start + size
        self.frames += 1
        if stored:
            self._stored = self._number
            if not self._wake.is_set():
                self._wake.set()
        return self._number

    def stored_through(self, number: int) -> None:
        """The records of every frame numbered up to ``number`` are in the store now."""
        if number > self._stored:
            self._stored = number
            if not self._wake.is_set():
                self._wake.set()

    def close(self) -> None:
        """Sync the store and write a marker (so that nothing is recovered next time), and
        let the slot go. Without the store's fsync, the marker is not written: the records
        are recovered at the next start instead."""
        self._closing.set()
        self._wake.set()
        self._syncer.join()
        try:
            if self._stored < self._number:
                log.warning("record log %s: records not in the store left to recover", self.path)
            elif self._number > self._marked:  # frames since the last marker
                if self._number > self._covered:
                    self._sync_store()
                    self._covered = self._number
                self._mark()  # even if the syncer covered them all: no frame on disk says so
        except OSError as exc:
            log.error("record log %s left to recover: %s", self.path, exc)
        finally:
            os.close(self._fd)
            os.close(self._lock)
            with contextlib.suppress(BufferError):
                self._buffer.close()

    def _fits(self, end: int) -> bool:
        """Whether a frame ending at ``end`` leaves every frame not yet covered whole."""
        uncovered, covered = self._uncovered, self._covered
        while uncovered and uncovered[0][0] <= covered:
            uncovered.popleft()
        return not uncovered or end - uncovered[0][1] <= self._ring

    def _stall(self) -> None:
        self.store_pending()
        number = self._stored = self._number
        self._sync_store()
        self._covered = max(self._covered, number)
        self._uncovered.clear()
        self.stalls += 1

    def _store_sync(self) -> None:
        self.store_pending()
        self._stored = self._number
        self._sync_store()
        self.store_syncs += 1

    def _place(self, size: int) -> int:
        """Where a frame of ``size`` bytes goes: at the head, or at the next lap's start if
        it would run past the ring's end (frames do not wrap)."""
        start = self._head
        if start % self._ring + size > self._ring:
            start += self._ring - start % self._ring
        return start

    def _mark(self) -> None:
        """A frame covering itself, at the head: nothing written before it is recovered."""
        self._number += 1
        self._covered = self._stored = self._marked = self._number
        start = self._place(BLOCK)
        self._put(start, self._number, self._number, EMPTY, BLOCK)
        self._head = start + BLOCK

    def _sync_loop(self) -> None:
        """The store syncer: while frames are written, fsync the store's log every
        ``sync_interval`` seconds and count the frames whose records were in the store
        before as covered."""
        while not self._closing.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._closing.is_set():
                return
            number = self._stored
            if number <= self._covered:
                continue
            try:
                self._sync_store()
            except Exception as exc:  # the loop's own fsync will raise it when the ring is full
                log.error("record log %s: the store's log cannot be fsynced: %s", self.path, exc)
            else:
                self._covered = max(self._covered, number)
            self._closing.wait(self._interval)  # frames written meanwhile: one fsync later

    def _put(self, start: int, number: int, covered: int, records: bytes, size: int) -> None:
        if size > len(self._buffer):
            self._buffer.close()
            self._buffer = mmap.mmap(-1, padded(size * 2))
        write_frame(self._fd, self._buffer, start % self._ring, number, covered, records, size)


def _nothing() -> None:
    pass

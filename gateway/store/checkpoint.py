"""A WAL checkpoint that does not stall the log's fsyncs.

SQLite's own checkpoint copies the log's pages into the database file and then
fsyncs that file: hundreds of megabytes flushed in one go, during which every
other fsync on the disk waits (measured here: the log's fdatasync stalled
120-200 ms while 512 MiB were fsynced beside it; a 2-worker paced run's p99 went
to 533 ms when the upkeep checkpointed a 1 GiB log under load). This one writes
the same pages back a few MiB at a time, waiting for each step, so the log's
fsyncs slip in between (the same 512 MiB: worst log fdatasync 3.6-7.6 ms):

1. **pin** — a read transaction on a connection of its own. While it is open
   SQLite neither copies frames it cannot see nor *restarts* the log (writes
   over it from the start), so the log keeps every frame it covers;
2. **fsync the log**: the frames the pin sees are on disk before any of them
   is copied (what SQLite does before a checkpoint);
3. **copy** — ``PRAGMA wal_checkpoint(PASSIVE)`` on a connection with
   ``synchronous = OFF``: the pages go to the file in the operating system's
   cache, no fsync;
4. **write back, paced** — ``sync_file_range`` over the file, a few MiB a
   step, each waited for, with a pause after a step that wrote; then
   ``fdatasync``: the copied pages are on disk;
5. **unpin** — only now may the log be restarted and its frames overwritten;
6. **restart** — ``PRAGMA wal_checkpoint(RESTART)`` on a ``synchronous = FULL``
   connection copies what was committed meanwhile (little: the pages written
   since the pin), fsyncs the database file, and waits for readers to let go of
   the log, so that the next commit writes the log **from its start again**.
   It holds the write lock for that moment (about a millisecond; the recorder
   retries its commit), at most ``RESTART_WAIT`` seconds, else it gives up
   until the next checkpoint.

Why step 6: a passive checkpoint never catches up with a log committed to every
millisecond, since it must copy every frame, and finish, between two commits for
SQLite to restart the log. Without it the log grew by 30 MB/s under load (1.4 GB
in 40 s), and a log that grows is slow to fsync: each fdatasync must also commit
the file's new size to the file system's journal (0.25 ms here, against 0.12 ms
for a log overwritten in place), and every commit of the recorder waits for one.

A power loss before step 5 finds the log intact and SQLite replays it over
whatever part of the copy reached the disk; step 6 is SQLite's own checkpoint
(the database file fsynced before the log may be overwritten). Without
``sync_file_range`` (another system) :func:`checkpoint` is SQLite's own.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sqlite3
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from gateway.logsync import held_open

#: Bytes written back per step, and the longest pause after a step that wrote.
STEP: Final = 4 * 1024 * 1024
MAX_PAUSE: Final = 0.005
_WAIT_BEFORE, _WRITE, _WAIT_AFTER = 1, 2, 4
#: Seconds the restart may wait for the write lock and for readers.
RESTART_WAIT: Final = 0.05
#: The wal-index header (https://www.sqlite.org/walformat.html), in the ``-shm`` file in
#: native byte order: iVersion, unused, iChange, isInit, bigEndCksum, szPage, mxFrame.
_WAL_INDEX: Final = struct.Struct("=IIIBBHI")
_WAL_INDEX_VERSION: Final = 3007000


def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        function = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_SYNC_FILE_RANGE = _sync_file_range()


def paced() -> bool:
    """Whether this system can write back in steps (Linux)."""
    return _SYNC_FILE_RANGE is not None


def write_back(path: Path, step: int = STEP, max_pause: float = MAX_PAUSE) -> float:
    """Write ``path``'s dirty pages to disk ``step`` bytes at a time, then ``fdatasync``;
    return the seconds spent writing (pauses excluded)."""
    assert _SYNC_FILE_RANGE is not None
    fd = held_open(path)  # never closed: closing would drop the process's SQLite locks
    writing = 0.0
    size = os.fstat(fd).st_size
    for offset in range(0, size, step):
        started = time.perf_counter()
        if _SYNC_FILE_RANGE(fd, offset, step, _WAIT_BEFORE | _WRITE | _WAIT_AFTER) != 0:
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error), str(path))
        took = time.perf_counter() - started
        writing += took
        if took > 0.0005:  # the step wrote: let the log's fsyncs through
            time.sleep(min(took, max_pause))
    os.fdatasync(fd)
    return writing


def _fsync(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def log_in_use(path: Path) -> int:
    """Bytes of the write-ahead log holding frames not yet overwritable: the frames since
    its last restart (``mxFrame`` of the wal-index header), 0 without a log. Not the
    file's size, which stays at its largest after a restart."""
    try:  # a descriptor kept open: closing one would drop the process's SQLite locks on it
        header = os.pread(held_open(f"{path}-shm"), _WAL_INDEX.size, 0)
    except FileNotFoundError:
        return 0
    if len(header) < _WAL_INDEX.size:
        return 0
    version, _, _, _, _, page, frames = _WAL_INDEX.unpack(header)
    if version != _WAL_INDEX_VERSION:  # not a layout this code knows: the file's size
        try:
            return os.stat(f"{path}-wal").st_size
        except FileNotFoundError:
            return 0
    page_size = 65536 if page == 1 else page
    return int(frames) * (page_size + 24)


def connect(path: Path) -> sqlite3.Connection:
    """The connection that copies: ``synchronous = OFF`` where the write-back is paced here,
    else ``FULL`` (SQLite fsyncs the log before copying and the file after)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 0")
    conn.execute(f"PRAGMA synchronous = {'OFF' if paced() else 'FULL'}")
    return conn


def connect_restarter(path: Path) -> sqlite3.Connection:
    """The connection of step 6: SQLite's checkpoint, fsyncs included, waiting at most
    ``RESTART_WAIT`` for the write lock and the readers."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {int(RESTART_WAIT * 1000)}")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def restart(restarter: sqlite3.Connection) -> bool:
    """Step 6 alone: whether the log will be written from its start by the next commit."""
    busy = restarter.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()[0]
    return int(busy) == 0


def checkpoint(path: Path, pin: sqlite3.Connection, copier: sqlite3.Connection) -> tuple[int, int]:
    """Steps 1 to 5 on the log of the database at ``path`` (the caller restarts: step 6),
    with ``pin`` (any connection to it, not in a transaction) and ``copier`` (from
    :func:`connect`); return (frames in the log, frames copied)."""
    if _SYNC_FILE_RANGE is None:
        row = copier.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(row[1]), int(row[2])
    pin.execute("BEGIN")
    try:
        pin.execute("SELECT count(*) FROM sqlite_master").fetchone()
        _fsync(f"{path}-wal")
        row = copier.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if int(row[2]) > 0:
            write_back(path)
    finally:
        pin.execute("COMMIT")
    return int(row[1]), int(row[2])


class Paced:
    """The paced checkpoint of one file (steps 1 to 6), on connections of its own, opened
    at its first run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conns: tuple[sqlite3.Connection, sqlite3.Connection, sqlite3.Connection] | None
        self._conns = None

    def run(self) -> tuple[int, int]:
        """(frames in the log, frames copied to the file)."""
        if self._conns is None:
            pin = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            pin.execute("PRAGMA query_only = ON")
            self._conns = pin, connect(self.path), connect_restarter(self.path)
        pin, copier, restarter = self._conns
        done = checkpoint(self.path, pin, copier)
        restart(restarter)
        return done

    def close(self) -> None:
        for conn in self._conns or ():
            conn.close()
        self._conns = None

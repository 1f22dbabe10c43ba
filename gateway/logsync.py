"""The log's fsync in a process of its own, asked through a pipe (``python -m gateway.logsync``).

A worker commits each batch of checks without an fsync and must not acknowledge it
before the write-ahead log is on disk. Done in the event loop's thread, the fsync (0.1-0.5
ms under load) stops every request in the worker meanwhile; done in a thread, the
thread must be woken and take the GIL back from the busy loop before the loop hears
of it (0.4 ms median measured). A process has neither cost: it waits on a pipe, the
kernel wakes it at once, it fsyncs while the loop goes on with the next requests, and
its answer wakes the loop through the same ``epoll`` as the sockets.

Protocol: the worker writes one byte ``s`` when it needs the log on disk, then waits for
the answer before asking again; this process answers ``k`` once an fsync that began
after the request returned, or ``e`` and the error's text and a newline. End of input
ends it. An fsync covers every write to the file by any process (Linux syncs the
file's pages, not a descriptor's), so the worker's commits are all on disk when ``k``
comes.

This module imports nothing from the gateway: it starts in a few milliseconds.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

MODULE = "gateway.logsync"

#: Descriptors of database files opened to be synced or read, by path and inode.
_HELD: dict[tuple[str, int], int] = {}


def held_open(path: str | os.PathLike[str]) -> int:
    """A descriptor of a database file ``path`` (read-write: the database, its ``-shm``),
    opened once in this process and not closed while that file is in use.

    Closing any descriptor of a file drops every POSIX lock the process holds on it, those
    of its SQLite connections included: a worker that opened the database (or its shared
    memory index) to sync or read it and closed it again would let another process
    believe itself the only one connected, reset the index or delete the write-ahead log
    under the worker's feet (SQLite's "How To Corrupt", 2.2; seen here as "database disk
    image is malformed" with two workers). SQLite keeps such descriptors open for the same
    reason. A descriptor of a file since deleted or replaced is closed (the locks of
    another inode are not touched) when a new one is opened."""
    name = os.fspath(path)
    inode = os.stat(name).st_ino
    fd = _HELD.get((name, inode))
    if fd is not None:
        return fd
    for held_path, held_inode in list(_HELD):
        try:
            current = os.stat(held_path).st_ino
        except FileNotFoundError:
            current = -1
        if current != held_inode:  # not the file at that path any more: none of its locks
            os.close(_HELD.pop((held_path, held_inode)))
    fd = os.open(name, os.O_RDWR | os.O_CLOEXEC)
    _HELD[(name, os.fstat(fd).st_ino)] = fd
    return fd


class LogFile:
    """The log of the database at ``path``, synced on demand (``fdatasync``).

    The log is reopened when it was replaced, and then fsynced with its directory; with no
    log (none written yet, or all of it checkpointed and removed) the database file itself
    is synced."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        # The record log's store syncer and the event loop may both sync: one reopening the
        # log must not close a descriptor the other is about to use (or that was reused).
        self._lock = threading.Lock()

    def sync(self) -> None:
        with self._lock:
            self._sync()

    def _sync(self) -> None:
        wal = f"{self.path}-wal"
        try:
            inode = os.stat(wal).st_ino
        except FileNotFoundError:
            os.fsync(held_open(self.path))  # never closed: see held_open
            return
        if self._fd is None or os.fstat(self._fd).st_ino != inode:
            self._close()
            self._fd = os.open(wal, os.O_RDONLY)
            # A log SQLite has just created: its name must be on disk too, once.
            os.fsync(self._fd)
            directory = os.open(os.path.dirname(wal) or ".", os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
            return
        # The data and what reading it back needs (the size, when the log grew), not the
        # times: PostgreSQL's default for its WAL on Linux. A full fsync also wrote the
        # inode's new mtime through the journal: p99 0.47 ms against 0.17 idle here.
        os.fdatasync(self._fd)

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def command(database: str | os.PathLike[str]) -> list[str]:
    """How a worker starts this process for the database at ``database``."""
    return [sys.executable, "-m", MODULE, os.fspath(database)]


def serve(log: LogFile, requests: int = 0, answers: int = 1) -> None:
    """Answer requests on the ``requests`` descriptor until it ends."""
    try:
        while os.read(requests, 4096):
            try:
                log.sync()
            except OSError as exc:
                text = str(exc).replace("\n", " ")
                os.write(answers, b"e" + text.encode("utf-8", "replace") + b"\n")
            else:
                os.write(answers, b"k")
    finally:
        log.close()


if __name__ == "__main__":  # pragma: no cover - run as a child process
    if len(sys.argv) != 2:
        sys.exit("usage: python -m gateway.logsync DATABASE_PATH")
    with contextlib.suppress(BrokenPipeError, KeyboardInterrupt):
        serve(LogFile(sys.argv[1]))

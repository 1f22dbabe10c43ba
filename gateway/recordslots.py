"""The record log's directory: one slot a worker, held by ``flock``, bound to its store.

Every worker writes its own file, ``slot-<n>.log`` in the records directory, which it holds
with an exclusive ``flock`` for as long as it runs. Opening takes the first slot no one
holds, and recovers it and every other slot no one holds (a worker that was killed, or
workers fewer than before): nothing left in a slot is lost. Workers open one at a time
(``flock`` on ``<directory>.lock``). The directory is **bound to its store**: its file
``store`` holds the store's identity (random, made with the database); a directory of
another store (a database made anew at the same path) is moved aside to
``<directory>.<identity>``, never recovered into this one. The slot's frames are written
by :class:`gateway.recordlog.RecordLog`.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from gateway.recordframes import Restore, recover, write_marker

log = logging.getLogger(__name__)

T = TypeVar("T")


def take_slot(
    directory: Path, store: str, restore: Restore, use: Callable[[Path, int, int], T]
) -> T:
    """``use(path, lock, last)`` of the first free slot of ``directory`` (its path, the
    descriptor holding its lock, the highest frame number in it), after recovering it and
    every other free slot into the store (``restore``), whose identity is ``store``. ``use``
    runs while no other worker opens a slot; if it raises, the slot is let go."""
    with _held(directory.with_name(f"{directory.name}.lock")):  # one worker at a time
        _bind(directory, store)
        path, lock, last = _recover_slots(directory, restore)
        try:
            taken = use(path, lock, last)
        except BaseException:
            os.close(lock)
            raise
        fsync_directory(directory)  # a slot made now: its name on disk before its frames
        return taken


def _recover_slots(directory: Path, restore: Restore) -> tuple[Path, int, int]:
    """Recover every slot no one holds; keep the first (held), write a marker at the start
    of the others (nothing in them is recovered again) and let them go."""
    own: tuple[Path, int, int] | None = None
    number = 0
    try:
        while True:
            path = directory / f"slot-{number}.log"
            number += 1
            if own is not None and not path.exists():
                break
            lock = _try_lock(path)
            if lock is None:
                continue
            try:
                recovered, last = recover(path, restore)
                if recovered:
                    log.warning("recovered %d records from %s into the store", recovered, path)
                if own is None:
                    own = (path, lock, last)
                    continue
                write_marker(path, last + 1)
            finally:
                if own is None or own[1] != lock:
                    os.close(lock)  # a free slot recovered: let it go
    except BaseException:
        if own is not None:
            os.close(own[1])
        raise
    assert own is not None
    return own


def _try_lock(path: Path) -> int | None:
    """An open descriptor of ``path`` holding its exclusive lock, or None if held elsewhere."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def _held(lock_path: Path) -> Iterator[None]:
    """An exclusive ``flock`` of ``lock_path`` for the block (waiting for it)."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _bind(directory: Path, store: str) -> None:
    """Make ``directory`` the record log of the store ``store``: a directory of another
    store (a database made anew at the same path) is moved aside, not recovered into this
    one; a new one is marked with ``store`` before any slot is written."""
    identity = directory / "store"
    try:
        found = identity.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        found = ""
    if found and found != store:
        aside = directory.with_name(f"{directory.name}.{found}")
        log.warning(
            "record log %s is of another store (%s): moved to %s, not recovered into this one",
            directory,
            found,
            aside,
        )
        directory.rename(aside)
        found = ""
    directory.mkdir(parents=True, exist_ok=True)
    if not found:
        partial = directory / "store.new"
        with partial.open("w", encoding="ascii") as out:
            out.write(store + "\n")
            out.flush()
            os.fsync(out.fileno())
        partial.replace(identity)
        fsync_directory(directory)
        fsync_directory(directory.parent)


def fsync_directory(directory: Path) -> None:
    """Make ``directory``'s entries (files made, renamed) durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

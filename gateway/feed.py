"""How list changes reach this worker: follow the store's change log by sequence number.

``build`` fills a snapshot from the store at start; ``ChangeFollower`` then
polls the change table every ``interval`` seconds, reloads the subjects that
changed and applies them as one delta per page of changes. Given a ``listener``
(PostgreSQL's LISTEN, ``gateway.store.pg.notify``), it reads as soon as the store
says the log grew, and polls only every ``LISTENING_POLL`` seconds while that
listener is connected. If the store cannot be read, the snapshot keeps serving
what it has and the follower retries with back-off; ``healthy`` and
``last_error`` say so to ``/readyz``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Protocol

from gateway import snapshot_build, snapshot_file
from gateway.background import BackgroundTask
from gateway.compact import CompactSubjects
from gateway.compact_build import CompactBuilder
from gateway.snapshot import Snapshot, Subject
from gateway.snapshot_file import Saved
from gateway.store import Store
from gateway.store.backend import AnyStore

log = logging.getLogger(__name__)

PAGE = 10_000
#: Seconds between two reads of the change log while a listener wakes the follower.
LISTENING_POLL = 1.0
#: A saved snapshot further behind the change log than this (or a tenth of its entries)
#: is not caught up but built anew.
STALE_CHANGES = 100_000


#: Where a saved snapshot is read from at start: a name for the logs and a reader run in
#: a thread (None when it holds none).
Source = tuple[str, Callable[[], Saved | None]]
#: Writes a packed snapshot somewhere, in a thread: (base, version, fingerprint, entries).
Sink = Callable[[CompactSubjects, int, str, int], object]


def file_source(path: Path) -> Source:
    return ("file", partial(snapshot_file.load, path))


def file_sink(path: Path) -> tuple[str, Sink]:
    return (str(path), partial(snapshot_file.save, path))


async def build(
    store: AnyStore,
    snapshot: Snapshot,
    sources: Sequence[Source] = (),
    sinks: Sequence[tuple[str, Sink]] = (),
    build_lock: Path | None = None,
) -> None:
    """Load every live subject: from the first of ``sources`` holding a saved snapshot
    that fits this store's change log (then catch up), else from the store (the version
    is read first, so no change is missed). Every snapshot packed from then on (this
    build, later compactions) is written to each of ``sinks`` in the background.

    ``build_lock``: a file the workers of one machine lock to build from the store one at
    a time. The first builds (with every core: ``gateway.snapshot_build``) and lets go
    once its snapshot is saved; the others, which found no saved snapshot, wait, then
    read the one it saved (seconds) instead of building at once beside it (each as slow
    as the cores are shared)."""
    started = time.monotonic()
    savers = [SnapshotSaver(store, name, sink) for name, sink in sinks]
    if savers:

        def save_everywhere(base: CompactSubjects, version: int, entry_count: int) -> None:
            for saver in savers:
                saver.save(base, version, entry_count)

        snapshot.on_packed = save_everywhere
    if await _from_sources(store, snapshot, sources, started):
        return
    if build_lock is None:
        await _from_store(store, snapshot, started)
        return
    held = await _lock(build_lock)
    try:
        # Another worker may have built and saved one while this one waited.
        if await _from_sources(store, snapshot, sources, started):
            os.close(held)
            return
        await _from_store(store, snapshot, started)
    except BaseException:
        os.close(held)
        raise
    _unlock_once_saved(savers, held)


async def _from_sources(
    store: AnyStore, snapshot: Snapshot, sources: Sequence[Source], started: float
) -> bool:
    for name, read in sources:
        if await _use_saved(store, snapshot, name, read):
            await catch_up(store, snapshot)
            snapshot.loaded, snapshot.origin = True, name
            log.info(
                "snapshot read from %s and caught up in %.1f s: %d subjects, %d entries, "
                "version %d",
                name,
                time.monotonic() - started,
                len(snapshot),
                snapshot.entry_count,
                snapshot.version,
            )
            return True
    return False


async def _from_store(store: AnyStore, snapshot: Snapshot, started: float) -> None:
    version = await store.last_change_seq()
    parts = await _build_in_parts(store)
    if parts is not None:
        snapshot.load_builder(parts)
    else:
        async for rows, grades in store.live_rows():
            snapshot.load_rows(rows, grades)
            await asyncio.sleep(0)
    await snapshot.finish_load(version)
    snapshot.origin = "store"
    log.info(
        "snapshot built from the store in %.1f s%s: %d subjects, %d entries, version %d",
        time.monotonic() - started,
        " in parts" if parts is not None else "",
        len(snapshot),
        snapshot.entry_count,
        version,
    )


async def _lock(path: Path) -> int:
    """The build lock held (a descriptor to close to let go), waited for if need be."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log.info("another worker is building the snapshot: waiting for it (%s)", path)
        try:
            await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
    return fd


def _unlock_once_saved(savers: list[SnapshotSaver], held: int) -> None:
    """Let go of the build lock when the snapshot just built is saved (in the background:
    this worker serves meanwhile)."""

    async def unlock() -> None:
        try:
            for saver in savers:
                await saver.idle()
        finally:
            os.close(held)

    task = asyncio.get_running_loop().create_task(unlock(), name="snapshot-build-lock")
    _UNLOCKING.add(task)
    task.add_done_callback(_UNLOCKING.discard)


_UNLOCKING: set[asyncio.Task[None]] = set()


async def _build_in_parts(store: AnyStore) -> CompactBuilder | None:
    """The store's live subjects packed by several processes (SQLite, enough entries,
    more than one core: ``gateway.snapshot_build``), or None."""
    parts = snapshot_build.processes()
    if not isinstance(store, Store) or parts < 2:
        return None
    _, cuts = await store.live_plan(parts, snapshot_build.MIN_ENTRIES)
    return await snapshot_build.build_in_parts(str(store.path), cuts)


async def _use_saved(
    store: AnyStore, snapshot: Snapshot, name: str, read: Callable[[], Saved | None]
) -> bool:
    try:
        found = await asyncio.to_thread(read)
    except Exception as exc:  # a source that fails is passed over
        log.warning("snapshot in %s not read: %s", name, exc)
        return False
    if found is None:
        return False
    last = await store.last_change_seq()
    if found.version > last or await store.change_at(found.version) != found.fingerprint:
        log.warning("snapshot in %s is not of this store's change log: not used", name)
        return False
    if last - found.version > max(STALE_CHANGES, found.entry_count // 10):
        log.info("snapshot in %s is %d changes behind: building anew", name, last - found.version)
        return False
    snapshot.use(found.subjects, found.version, found.entry_count)
    return True


class SnapshotSaver:
    """Writes packed snapshots to one sink in a thread, one at a time (the latest
    offered), never blocking checks."""

    def __init__(self, store: AnyStore, name: str, sink: Sink) -> None:
        self.store = store
        self.name = name
        self.sink = sink
        self._task: asyncio.Task[None] | None = None
        self._next: tuple[CompactSubjects, int, int] | None = None

    def save(self, base: CompactSubjects, version: int, entry_count: int) -> None:
        self._next = (base, version, entry_count)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="snapshot-save")

    async def idle(self) -> None:
        """Wait until what was offered so far is saved (or failed: logged)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def _run(self) -> None:
        while self._next is not None:
            (base, version, entry_count), self._next = self._next, None
            try:
                fingerprint = await self.store.change_at(version)
                saved = await asyncio.to_thread(self.sink, base, version, fingerprint, entry_count)
                if saved is not False:  # False: the sink holds one as recent already
                    log.info("snapshot %d saved to %s", version, self.name)
            except Exception:  # the next start builds from the store instead
                log.exception("snapshot %d not saved to %s", version, self.name)


async def catch_up(store: AnyStore, snapshot: Snapshot) -> int:
    """Apply every change after the snapshot's version; return how many were applied."""
    applied = 0
    while True:
        changes = await store.changes_since(snapshot.version, limit=PAGE)
        if not changes:
            return applied
        usccs = list(dict.fromkeys(uscc for _, uscc in changes))
        states = await store.subjects(usccs)
        delta = {uscc: Subject(*states[uscc]) if uscc in states else None for uscc in usccs}
        await snapshot.apply(delta, changes[-1][0])
        applied += len(changes)
        if len(changes) < PAGE:
            return applied


class Listener(Protocol):
    """Calls the follower's ``wake`` when the change log grew (see ``ChangeFollower``)."""

    async def ensure(self) -> bool: ...

    async def close(self) -> None: ...


class ChangeFollower(BackgroundTask):
    """A background task keeping one snapshot current."""

    task_name = "change-follower"

    def __init__(
        self,
        store: AnyStore,
        snapshot: Snapshot,
        interval: float = 0.1,
        listener: Callable[[Callable[[], None]], Listener] | None = None,
    ) -> None:
        self.store = store
        self.snapshot = snapshot
        self.interval = interval
        self.healthy = True
        self.last_error = ""
        self.last_ok = time.monotonic()
        self._woken = asyncio.Event()
        self._listener = listener(self._woken.set) if listener is not None else None

    async def stop(self) -> None:
        await super().stop()
        if self._listener is not None:
            await self._listener.close()

    async def _wait(self, delay: float) -> None:
        """Until woken by the listener, or ``delay`` seconds (longer while it listens)."""
        if self._listener is not None and await self._listener.ensure():
            delay = max(delay, LISTENING_POLL)
        if not self._woken.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), delay)
        self._woken.clear()

    async def _run(self) -> None:
        delay = self.interval
        while True:
            try:
                await catch_up(self.store, self.snapshot)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep serving the last snapshot; say why
                self.healthy = False
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "change log unreadable, serving snapshot %d: %s",
                    self.snapshot.version,
                    self.last_error,
                )
                delay = min(delay * 2, 5.0)
            else:
                self.healthy, self.last_error = True, ""
                self.last_ok = time.monotonic()
                delay = self.interval
            await self._wait(delay)

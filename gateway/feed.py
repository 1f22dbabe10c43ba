"""How list changes reach this worker: follow the store's change log by sequence number.

``build`` fills a snapshot from the store at start; ``ChangeFollower`` then
polls the change table every ``interval`` seconds, reloads the subjects that
changed and applies them as one delta per page of changes. If the store
cannot be read, the snapshot keeps serving what it has and the follower
retries with back-off; ``healthy`` and ``last_error`` say so to ``/readyz``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

from gateway import snapshot_file
from gateway.compact import CompactSubjects
from gateway.snapshot import Snapshot, Subject
from gateway.store import Store

log = logging.getLogger(__name__)

PAGE = 10_000
#: A saved snapshot further behind the change log than this (or a tenth of its entries)
#: is not caught up but built anew.
STALE_CHANGES = 100_000


async def build(store: Store, snapshot: Snapshot, saved: Path | None = None) -> None:
    """Load every live subject: from the snapshot ``saved`` in a file when it fits this
    store's change log (then catch up), else from the store (the version is read first,
    so no change is missed) and save it there for the next start."""
    started = time.monotonic()
    if saved is not None:
        snapshot.on_packed = SnapshotSaver(store, saved).save
        if await _use_saved(store, snapshot, saved):
            await catch_up(store, snapshot)
            snapshot.loaded, snapshot.origin = True, "file"
            log.info(
                "snapshot read from %s and caught up in %.1f s: %d subjects, %d entries, "
                "version %d",
                saved,
                time.monotonic() - started,
                len(snapshot),
                snapshot.entry_count,
                snapshot.version,
            )
            return
    version = await store.last_change_seq()
    async for chunk in store.live_records():
        snapshot.load_records(chunk)
        await asyncio.sleep(0)
    await snapshot.finish_load(version)
    snapshot.origin = "store"
    log.info(
        "snapshot built from the store in %.1f s: %d subjects, %d entries, version %d",
        time.monotonic() - started,
        len(snapshot),
        snapshot.entry_count,
        version,
    )


async def _use_saved(store: Store, snapshot: Snapshot, path: Path) -> bool:
    found = await asyncio.to_thread(snapshot_file.load, path)
    if found is None:
        return False
    last = await store.last_change_seq()
    if found.version > last or await store.change_at(found.version) != found.fingerprint:
        log.warning("snapshot file %s is not of this store's change log: not used", path)
        return False
    if last - found.version > max(STALE_CHANGES, found.entry_count // 10):
        log.info("snapshot file %s is %d changes behind: building anew", path, last - found.version)
        return False
    snapshot.use(found.subjects, found.version, found.entry_count)
    return True


class SnapshotSaver:
    """Saves packed snapshots to a file in a thread, one at a time, never blocking checks."""

    def __init__(self, store: Store, path: Path) -> None:
        self.store = store
        self.path = path
        self._task: asyncio.Task[None] | None = None
        self._next: tuple[CompactSubjects, int, int] | None = None

    def save(self, base: CompactSubjects, version: int, entry_count: int) -> None:
        self._next = (base, version, entry_count)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="snapshot-save")

    async def _run(self) -> None:
        while self._next is not None:
            (base, version, entry_count), self._next = self._next, None
            try:
                fingerprint = await self.store.change_at(version)
                await asyncio.to_thread(
                    snapshot_file.save, self.path, base, version, fingerprint, entry_count
                )
                log.info("snapshot %d saved to %s", version, self.path)
            except Exception:  # the next start builds from the store instead
                log.exception("snapshot %d not saved to %s", version, self.path)


async def catch_up(store: Store, snapshot: Snapshot) -> int:
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


class ChangeFollower:
    """A background task keeping one snapshot current."""

    def __init__(self, store: Store, snapshot: Snapshot, interval: float = 0.1) -> None:
        self.store = store
        self.snapshot = snapshot
        self.interval = interval
        self.healthy = True
        self.last_error = ""
        self.last_ok = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="change-follower")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

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
            await asyncio.sleep(delay)

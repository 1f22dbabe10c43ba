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

from gateway.snapshot import Snapshot, Subject
from gateway.store import Store

log = logging.getLogger(__name__)

PAGE = 10_000


async def build(store: Store, snapshot: Snapshot) -> None:
    """Load every live subject. The version is read first, so no change is missed."""
    version = await store.last_change_seq()
    async for chunk in store.live_subjects():
        snapshot.load({uscc: Subject(entries, grade) for uscc, entries, grade in chunk})
        await asyncio.sleep(0)
    snapshot.finish_load(version)
    log.info(
        "snapshot loaded: %d subjects, %d entries, version %d",
        len(snapshot),
        snapshot.entry_count,
        version,
    )


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

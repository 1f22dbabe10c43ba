"""Durability for batches committed without an fsync: one thread fsyncs the log for all.

The recorder commits a batch in the event loop's thread with ``synchronous =
NORMAL`` (the transaction is in the write-ahead log, in the operating system's
cache) and hands it here. This thread takes every batch handed over so far, calls
``sync_wal`` once (an fsync of the log file: what ``synchronous = FULL`` does at each
commit), and only then passes them back to the loop, which tells their callers the
records are recorded. A batch handed over while an fsync runs waits for the next
one, so every acknowledged record was on disk before its acknowledgement; and one
fsync serves however many batches the loop committed meanwhile.

While an fsync runs, :attr:`WalSyncer.busy` is true and the recorder holds back its
next commit until the fsync's batches are resolved (``on_idle``): records submitted
meanwhile would wait for the next fsync anyway, and committed together they write
the log's pages once for all of them instead of once per turn of the loop, so the
next fsync has fewer bytes to flush.

If the fsync fails, every batch it was to cover fails: its callers get 503 and the
records count as not recorded (they may still be in the log; a retry is answered
from the store, see the API's idempotency).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

Item = TypeVar("Item")


class Syncable(Protocol):
    def sync_wal(self) -> None: ...


class WalSyncer(Generic[Item]):
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        log: Syncable,
        done: Callable[[list[Item], list[bool]], None],
        failed: Callable[[list[Item], Exception], None],
        on_idle: Callable[[], None] | None = None,
    ) -> None:
        self._loop = loop
        self._log = log
        self._done = done
        self._failed = failed
        self._on_idle = on_idle
        self._rounds_taken = 0  # fsync rounds begun (thread) and resolved (loop)
        self._rounds_resolved = 0
        self._waiting: deque[tuple[list[Item], list[bool]]] = deque()
        self._event = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.depth = 0  # records handed over and not yet resolved (read in the loop)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="wal-sync", daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        """An fsync is under way whose batches the loop has not yet resolved."""
        return self._rounds_taken != self._rounds_resolved

    def after_sync(self, batch: list[Item], inserted: list[bool]) -> None:
        """Resolve ``batch`` (committed) once the log is on disk. Loop thread only."""
        self.depth += len(batch)
        self._waiting.append((batch, inserted))
        self._event.set()

    async def stop(self) -> None:
        """Sync and resolve what was handed over, then end the thread."""
        self._stopping = True
        self._event.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        await asyncio.sleep(0)  # let the last callbacks run

    def _run(self) -> None:
        waiting = self._waiting
        while True:
            if not waiting:
                if self._stopping:
                    return
                self._event.wait()
                self._event.clear()
                continue  # look again: the event may have been set before it was cleared
            taken = [waiting.popleft() for _ in range(len(waiting))]
            self._rounds_taken += 1
            try:
                self._log.sync_wal()
            except Exception as exc:
                self._loop.call_soon_threadsafe(self._fail_all, taken, exc)
            else:
                self._loop.call_soon_threadsafe(self._resolve_all, taken)

    def _resolve_all(self, taken: list[tuple[list[Item], list[bool]]]) -> None:
        for batch, inserted in taken:
            self.depth -= len(batch)
            self._done(batch, inserted)
        self._round_over()

    def _fail_all(self, taken: list[tuple[list[Item], list[bool]]], exc: Exception) -> None:
        for batch, _ in taken:
            self.depth -= len(batch)
            self._failed(batch, exc)
        self._round_over()

    def _round_over(self) -> None:
        self._rounds_resolved += 1
        if self._on_idle is not None and not self.busy:
            self._on_idle()

"""The recorder's writer thread: batches that must wait for the store's write lock.

The recorder commits in the event loop's thread when it can (``gateway.recorder``). What
cannot be committed there — the whole queue when no inline writer is configured, a batch
whose lock another worker, an import or the upkeep has held for too long — goes here: a
thread that waits for the lock, inserts and commits (with its own fsync when durable),
and takes everything queued meanwhile as its next batch (at most ``max_batch`` records,
never splitting a batch check's records). Its results go back to the loop through
``call_soon_threadsafe``: ``committed(batch, inserted)`` or ``failed(batch, exc)``.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable

from gateway.model import CheckRecord, FeedbackRecord
from gateway.pipeline import whole_groups
from gateway.recording import Pending, Writer


class WriterThread:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        writer_factory: Callable[[], Writer],
        max_batch: int,
        began: Callable[[list[Pending]], None],
        committed: Callable[[list[Pending], list[bool]], None],
        failed: Callable[[list[Pending], Exception], None],
    ) -> None:
        self._loop = loop
        self._writer_factory = writer_factory
        self._max_batch = max_batch
        self._began = began
        self._committed = committed
        self._failed = failed
        self._queue: deque[Pending] = deque()
        self._work = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def __len__(self) -> int:
        """Records handed over and not yet taken into a batch."""
        return len(self._queue)

    async def start(self) -> None:
        """Start the thread; return once its writer is connected (or raise its error)."""
        started: asyncio.Future[None] = self._loop.create_future()
        self._thread = threading.Thread(
            target=self._run, args=(started,), name="recorder", daemon=True
        )
        self._thread.start()
        await started

    def add(self, pending: list[Pending]) -> None:
        """Queue records for the thread (any thread may call it)."""
        self._queue.extend(pending)
        if not self._work.is_set():
            self._work.set()

    async def stop(self) -> None:
        """Commit what is queued, then end the thread and close its writer."""
        if self._thread is None:
            return
        self._stopping = True
        self._work.set()
        await asyncio.to_thread(self._thread.join)
        self._thread = None
        await asyncio.sleep(0)  # let the last batch's callback resolve its futures

    def _run(self, started: asyncio.Future[None]) -> None:
        loop = self._loop
        try:
            writer = self._writer_factory()
        except BaseException as exc:
            loop.call_soon_threadsafe(_settle, started, exc)
            return
        loop.call_soon_threadsafe(_settle, started, None)
        queue = self._queue
        try:
            while True:
                if not queue:
                    if self._stopping:
                        return
                    self._work.clear()
                    if not queue and not self._stopping:
                        self._work.wait()
                    continue
                batch = [queue.popleft() for _ in range(whole_groups(queue, self._max_batch))]
                self._began(batch)
                checks = [r for r, _ in batch if isinstance(r, CheckRecord)]
                feedback = [r for r, _ in batch if isinstance(r, FeedbackRecord)]
                try:
                    inserted = writer.write(checks, feedback)
                except Exception as exc:
                    loop.call_soon_threadsafe(self._failed, batch, exc)
                else:
                    loop.call_soon_threadsafe(self._committed, batch, inserted)
        finally:
            writer.close()


def _settle(future: asyncio.Future[None], exc: BaseException | None) -> None:
    if exc is None:
        future.set_result(None)
    else:
        future.set_exception(exc)

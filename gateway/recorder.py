"""Write-behind recording of checks and feedback, with group commit.

Handlers ``submit`` a record and await the future it returns. One writer
thread takes everything queued (up to ``max_batch``), hands it to the store's
``CheckWriter`` in one call (insert + commit), and passes the outcome back to
the event loop in one callback per batch, which resolves the futures. The
thread starts the next batch as soon as one is committed, without waiting for
the event loop: while a batch is written the next accumulates, so batches grow
with load and each commit (and its fsync) is shared by many requests.

The queue is bounded: when full, ``submit`` raises :class:`RecorderFull`
and the caller answers 503 with ``Retry-After``; nothing is dropped silently.
If a batch cannot be committed its futures fail, so no caller is told a
record is durable when it is not. ``stop`` refuses new records, flushes what
is queued and closes the writer.

A second thread does the upkeep (indexing by subject, WAL checkpoints) every
second, indexing only while the recorder is idle (see ``store.maintenance``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from gateway.model import CheckRecord, FeedbackRecord

log = logging.getLogger(__name__)

#: Seconds without a commit after which the recorder counts as idle (upkeep may index).
IDLE_AFTER = 0.25

Pending = tuple[CheckRecord | FeedbackRecord, asyncio.Future[bool]]


class Writer(Protocol):
    def write(self, checks: list[CheckRecord], feedback: list[FeedbackRecord]) -> list[bool]: ...

    def close(self) -> None: ...


class Upkeep(Protocol):
    def run_once(self, *, busy: bool = False) -> int: ...

    def close(self) -> None: ...


class RecorderFull(Exception):
    """The queue is full (or the recorder is stopping): answer 503, try again later."""

    def __init__(self, retry_after: int = 1) -> None:
        super().__init__("recorder queue full")
        self.retry_after = retry_after


class Recorder:
    def __init__(
        self,
        writer_factory: Callable[[], Writer],
        *,
        upkeep_factory: Callable[[], Upkeep] | None = None,
        upkeep_interval: float = 1.0,
        max_queue: int = 20_000,
        max_batch: int = 1_000,
    ) -> None:
        self._writer_factory = writer_factory
        self.max_queue = max_queue
        self.max_batch = max_batch
        self._queue: deque[Pending] = deque()
        self._work = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._upkeep_factory = upkeep_factory
        self._upkeep_interval = upkeep_interval
        self._upkeep_task: asyncio.Task[None] | None = None
        self._upkeep_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="upkeep")
        self._accepting = False
        self.batches = 0
        self.records = 0
        self.last_write = 0.0
        self.last_error = ""

    @property
    def depth(self) -> int:
        return len(self._queue)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        started: asyncio.Future[None] = self._loop.create_future()
        self._thread = threading.Thread(
            target=self._write_loop, args=(started,), name="recorder", daemon=True
        )
        self._thread.start()
        await started  # the writer is connected (or its error is raised here)
        self._accepting = True
        if self._upkeep_factory is not None:
            self._upkeep_task = asyncio.create_task(self._upkeep(), name="recorder-upkeep")

    def submit(self, record: CheckRecord | FeedbackRecord) -> asyncio.Future[bool]:
        """Queue a record; the future resolves (True for a new feedback) once committed."""
        if not self._accepting or len(self._queue) >= self.max_queue:
            raise RecorderFull()
        assert self._loop is not None
        future: asyncio.Future[bool] = self._loop.create_future()
        self._queue.append((record, future))
        if not self._work.is_set():
            self._work.set()
        return future

    def submit_many(self, records: list[CheckRecord]) -> list[asyncio.Future[bool]]:
        """Queue several records, all or none."""
        if not self._accepting or len(self._queue) + len(records) > self.max_queue:
            raise RecorderFull()
        assert self._loop is not None
        futures = [self._loop.create_future() for _ in records]
        self._queue.extend(zip(records, futures, strict=True))
        self._work.set()
        return futures

    async def stop(self) -> None:
        """Refuse new records, flush the queue, close the writer."""
        self._accepting = False
        if self._upkeep_task is not None:
            self._upkeep_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._upkeep_task
            self._upkeep_task = None
        self._upkeep_executor.shutdown(wait=True)
        if self._thread is not None:
            self._stopping = True
            self._work.set()
            await asyncio.to_thread(self._thread.join)
            self._thread = None
            await asyncio.sleep(0)  # let the last batch's callback resolve its futures

    # -- the writer thread ---------------------------------------------------------------
    def _write_loop(self, started: asyncio.Future[None]) -> None:
        loop = self._loop
        assert loop is not None
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
                batch = [queue.popleft() for _ in range(min(self.max_batch, len(queue)))]
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

    def _committed(self, batch: list[Pending], inserted: list[bool]) -> None:
        self.last_error = ""
        self.last_write = time.monotonic()
        self.batches += 1
        self.records += len(batch)
        feedback_results = iter(inserted)
        for record, future in batch:
            result = next(feedback_results) if isinstance(record, FeedbackRecord) else True
            if not future.done():  # a caller that went away: committed all the same
                future.set_result(result)

    def _failed(self, batch: list[Pending], exc: Exception) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        log.error("batch of %d records not committed: %s", len(batch), self.last_error)
        for _, future in batch:
            if not future.done():
                future.set_exception(RecorderFull(retry_after=2))

    # -- upkeep --------------------------------------------------------------------------
    async def _upkeep(self) -> None:
        """Index and checkpoint what was recorded, on a thread of its own, every interval."""
        assert self._upkeep_factory is not None
        loop = asyncio.get_running_loop()
        upkeep = await loop.run_in_executor(self._upkeep_executor, self._upkeep_factory)
        try:
            while True:
                await asyncio.sleep(self._upkeep_interval)
                busy = time.monotonic() - self.last_write < IDLE_AFTER
                try:
                    await loop.run_in_executor(
                        self._upkeep_executor, functools.partial(upkeep.run_once, busy=busy)
                    )
                except Exception as exc:  # upkeep never stops the recording itself
                    log.warning("recorder upkeep failed: %s", exc)
        finally:
            await asyncio.shield(loop.run_in_executor(self._upkeep_executor, upkeep.close))


def _settle(future: asyncio.Future[None], exc: BaseException | None) -> None:
    if exc is None:
        future.set_result(None)
    else:
        future.set_exception(exc)

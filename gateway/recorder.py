"""Write-behind recording of checks and feedback, with group commit.

Handlers ``submit`` a record and await the future it returns; one writer task
takes everything queued (up to ``max_batch``), hands it to the store's
``CheckWriter`` in one call on one dedicated thread (insert + commit: a single
thread hop per batch), and resolves the futures once the batch is committed.
While a batch is being written the next one accumulates, so batches grow with
load and each commit is shared by many requests.

The queue is bounded: when full, ``submit`` raises :class:`RecorderFull`
and the caller answers 503 with ``Retry-After``; nothing is dropped silently.
If a batch cannot be committed its futures fail, so no caller is told a
record is durable when it is not. ``stop`` refuses new records, flushes what
is queued and closes the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from gateway.model import CheckRecord, FeedbackRecord

log = logging.getLogger(__name__)

#: Seconds without a commit after which the recorder counts as idle (upkeep may index).
IDLE_AFTER = 0.25


class Writer(Protocol):
    def write(self, checks: list[CheckRecord], feedback: list[FeedbackRecord]) -> list[bool]: ...

    def close(self) -> None: ...


class RecorderFull(Exception):
    """The queue is full (or the recorder is stopping): answer 503, try again later."""

    def __init__(self, retry_after: int = 1) -> None:
        super().__init__("recorder queue full")
        self.retry_after = retry_after


class Upkeep(Protocol):
    def run_once(self, *, busy: bool = False) -> int: ...

    def close(self) -> None: ...


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
        self._writer: Writer | None = None
        self.max_queue = max_queue
        self.max_batch = max_batch
        self._queue: deque[tuple[CheckRecord | FeedbackRecord, asyncio.Future[bool]]] = deque()
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recorder")
        self._task: asyncio.Task[None] | None = None
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
        loop = asyncio.get_running_loop()
        self._writer = await loop.run_in_executor(self._executor, self._writer_factory)
        self._accepting = True
        self._task = asyncio.create_task(self._run(), name="recorder")
        if self._upkeep_factory is not None:
            self._upkeep_task = asyncio.create_task(self._upkeep(), name="recorder-upkeep")

    def submit(self, record: CheckRecord | FeedbackRecord) -> asyncio.Future[bool]:
        """Queue a record; the future resolves (True for a new feedback) once committed."""
        if not self._accepting or len(self._queue) >= self.max_queue:
            raise RecorderFull()
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append((record, future))
        self._wake.set()
        return future

    def submit_many(self, records: list[CheckRecord]) -> list[asyncio.Future[bool]]:
        """Queue several records, all or none."""
        if not self._accepting or len(self._queue) + len(records) > self.max_queue:
            raise RecorderFull()
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in records]
        self._queue.extend(zip(records, futures, strict=True))
        self._wake.set()
        return futures

    async def stop(self) -> None:
        """Refuse new records, flush the queue, close the writer."""
        self._accepting = False
        self._wake.set()
        if self._upkeep_task is not None:
            self._upkeep_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._upkeep_task
            self._upkeep_task = None
        self._upkeep_executor.shutdown(wait=True)
        if self._task is not None:
            await self._task
            self._task = None
        if self._writer is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._writer.close)
            self._writer = None
        self._executor.shutdown(wait=True)

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

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._accepting or self._queue:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
            checks = [r for r, _ in batch if isinstance(r, CheckRecord)]
            feedback = [r for r, _ in batch if isinstance(r, FeedbackRecord)]
            writer = self._writer
            assert writer is not None
            try:
                inserted = await loop.run_in_executor(
                    self._executor, writer.write, checks, feedback
                )
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.error("batch of %d records not committed: %s", len(batch), self.last_error)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(RecorderFull(retry_after=2))
                continue
            self.last_error = ""
            self.last_write = time.monotonic()
            self.batches += 1
            self.records += len(batch)
            feedback_results = iter(inserted)
            for record, future in batch:
                result = next(feedback_results) if isinstance(record, FeedbackRecord) else True
                if not future.done():  # a caller that went away: committed all the same
                    future.set_result(result)

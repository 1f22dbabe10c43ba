"""Batches written from the event loop, several at once: the recorder's path to PostgreSQL.

On PostgreSQL the recorder has no file lock to wait for and no log of its own to fsync:
the server makes a transaction durable before its ``COMMIT`` returns
(``synchronous_commit = on``) and merges the commits of every node into its own group
commits. What a worker must not do is wait for each commit before starting the next: a
commit is a network round trip plus the server's WAL flush, during which the event loop
goes on answering checks. So the records of one turn of the loop go as one batch (one
transaction, see ``gateway.store.pg.recording``), awaited in the loop, and while a batch
is in flight the next one may start on another of the writer's connections. When every
connection is busy, records accumulate and leave together, up to ``max_batch`` at a time,
as soon as one returns: under load, batches grow with the commit's latency instead of
piling up.

Callers are answered when their batch's ``COMMIT`` returned, never before. A batch that
fails (the server refused it, the connection dropped) fails its callers, who get 503:
its transaction may or may not have committed if the connection dropped during the
``COMMIT``, which is why a retried check is answered from the store (the API's
idempotency) rather than recorded twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar

from gateway.model import CheckRecord, FeedbackRecord

Item = TypeVar("Item", bound=tuple[CheckRecord | FeedbackRecord, object])


def whole_groups(items: Sequence[tuple[object, object]], limit: int) -> int:
    """How many of ``items`` (record, what its commit resolves) one commit takes: up to
    ``limit``, and on to the end of a group that the limit would cut. The records of a
    batch check share what they resolve; split over two commits, one could fail after
    the other had committed: part of a screening recorded and the caller told 503.

    >>> solo, batch = object(), object()
    >>> whole_groups([(1, solo), (2, batch), (3, batch), (4, batch)], 2)
    4
    >>> whole_groups([(1, solo), (2, batch)], 1)
    1
    """
    end = min(limit, len(items))
    while 0 < end < len(items) and items[end][1] is items[end - 1][1]:
        end += 1
    return end


class BatchWriter(Protocol):
    """Writes one batch per call, each in one transaction committed before it returns;
    up to ``connections`` calls may run at once."""

    connections: int

    async def write(
        self, checks: Sequence[CheckRecord], feedback: Sequence[FeedbackRecord]
    ) -> list[bool]: ...

    async def close(self) -> None: ...


class Pipeline(Generic[Item]):
    """Feeds ``writer`` the records handed to :meth:`add`, in batches, from the loop."""

    def __init__(
        self,
        writer: BatchWriter,
        *,
        began: Callable[[list[Item]], None],
        done: Callable[[list[Item], list[bool]], None],
        failed: Callable[[list[Item], Exception], None],
        max_batch: int,
    ) -> None:
        self._writer = writer
        self._began = began
        self._done = done
        self._failed = failed
        self.max_batch = max_batch
        self._waiting: list[Item] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self._scheduled = False
        self._busy = 0  # connections with a batch in flight
        self._records_in_flight = 0

    @property
    def depth(self) -> int:
        """Records handed over and not yet committed (or failed)."""
        return len(self._waiting) + self._records_in_flight

    def add(self, items: list[Item]) -> None:
        """Write ``items`` with whatever else arrives during this turn of the loop."""
        self._waiting.extend(items)
        if not self._scheduled and self._busy < self._writer.connections:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._launch)

    def _launch(self) -> None:
        self._scheduled = False
        while self._waiting and self._busy < self._writer.connections:
            take = whole_groups(self._waiting, self.max_batch)
            batch = self._waiting[:take]
            del self._waiting[:take]
            self._busy += 1
            self._records_in_flight += len(batch)
            self._began(batch)
            task = asyncio.create_task(self._write(batch), name="recorder-batch")
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _write(self, batch: list[Item]) -> None:
        checks = [r for r, _ in batch if isinstance(r, CheckRecord)]
        feedback = [r for r, _ in batch if isinstance(r, FeedbackRecord)]
        try:
            inserted = await self._writer.write(checks, feedback)
        except Exception as exc:
            self._records_in_flight -= len(batch)
            self._failed(batch, exc)
        else:
            self._records_in_flight -= len(batch)
            self._done(batch, inserted)
        finally:
            # This batch's connection is free: what waited goes now, as one batch.
            self._busy -= 1
            if self._waiting and not self._scheduled:
                self._scheduled = True
                asyncio.get_running_loop().call_soon(self._launch)

    async def drain(self) -> None:
        """Write everything handed over, and wait until every batch has returned."""
        while self._waiting or self._in_flight:
            self._launch()
            if self._in_flight:
                await asyncio.wait(set(self._in_flight))

    async def close(self) -> None:
        """Drain, then close the writer."""
        await self.drain()
        await self._writer.close()

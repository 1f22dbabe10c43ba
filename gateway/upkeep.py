"""The recorder's upkeep: indexing and rolling up recorded checks every interval.

SQLite's upkeep (``gateway.store.Maintenance``) is synchronous and does the work in this
process: it runs on a thread of its own, so that the event loop never waits for it.
PostgreSQL's (``gateway.store.pg.PgMaintenance``) sends statements the server executes:
its steps are awaited in the loop. Either way a step that fails is logged and the next
one comes at the next interval: the upkeep never stops the recording itself.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

log = logging.getLogger(__name__)

Busy = bool | Callable[[], bool]


class Upkeep(Protocol):
    def run_once(self, *, busy: Busy = False) -> int: ...

    def close(self) -> None: ...


class AsyncUpkeep(Protocol):
    async def run_once(self, *, busy: Busy = False) -> int: ...

    async def close(self) -> None: ...


async def in_thread(
    factory: Callable[[], Upkeep], interval: float, busy: Callable[[], bool]
) -> None:
    """Run ``factory()``'s steps every ``interval`` on a thread of their own, until
    cancelled; then close it (on that thread)."""
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="upkeep")
    try:
        upkeep = await loop.run_in_executor(executor, factory)
        try:
            while True:
                await asyncio.sleep(interval)
                try:
                    await loop.run_in_executor(
                        executor, functools.partial(upkeep.run_once, busy=busy)
                    )
                except Exception as exc:
                    log.warning("recorder upkeep failed: %s", exc)
        finally:
            await asyncio.shield(loop.run_in_executor(executor, upkeep.close))
    finally:
        executor.shutdown(wait=True)


async def in_loop(
    factory: Callable[[], Awaitable[AsyncUpkeep]], interval: float, busy: Callable[[], bool]
) -> None:
    """Await ``await factory()``'s steps every ``interval`` in the loop, until cancelled;
    then close it."""
    upkeep = await factory()
    try:
        while True:
            await asyncio.sleep(interval)
            try:
                await upkeep.run_once(busy=busy)
            except Exception as exc:
                log.warning("recorder upkeep failed: %s", exc)
    finally:
        await asyncio.shield(upkeep.close())

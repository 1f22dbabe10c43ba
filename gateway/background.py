"""A worker's background loops (change followers, the relay, periodic jobs): one task each,
started and stopped the same way."""

from __future__ import annotations

import asyncio
import contextlib


class BackgroundTask:
    """Runs :meth:`_run` in a task named :attr:`task_name` between :meth:`start` and
    :meth:`stop` (which cancels it and waits for it to end)."""

    task_name = "background"

    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.task_name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        raise NotImplementedError

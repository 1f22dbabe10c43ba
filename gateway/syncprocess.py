"""Durability for batches committed without an fsync: a sync process fsyncs the log for all.

The same contract as :class:`gateway.walsync.WalSyncer` (a batch handed over is resolved
once an fsync that began after its commit returned; one fsync for every batch handed
over meanwhile; ``busy`` while one runs), with the fsync done by a child process asked
through a pipe, so that the event loop neither waits for the disk nor for a thread to
be woken. The answer comes back as a readable pipe in the loop's own ``epoll``.

If the process ends or its pipe breaks, the batches it was to cover and any handed
over later go to ``fallback`` (the thread syncer): nothing is acknowledged unsynced,
nothing is failed for want of the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
from collections import deque
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from gateway.walsync import Syncable, WalSyncer

log = logging.getLogger(__name__)

Item = TypeVar("Item")


class Syncer(Protocol[Item]):
    @property
    def depth(self) -> int: ...

    @property
    def busy(self) -> bool: ...

    def after_sync(self, batch: list[Item], inserted: list[bool]) -> None: ...

    async def stop(self) -> None: ...


class SyncProcess(Generic[Item]):
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        command: list[str],
        done: Callable[[list[Item], list[bool]], None],
        failed: Callable[[list[Item], Exception], None],
        on_idle: Callable[[], None],
        fallback: Callable[[], Syncer[Item]],
    ) -> None:
        self._loop = loop
        self._command = command
        self._done = done
        self._failed = failed
        self._on_idle = on_idle
        self._fallback_factory = fallback
        self._fallback: Syncer[Item] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._requests = -1
        self._answers = -1
        self._answer = b""
        self._waiting: deque[tuple[list[Item], list[bool]]] = deque()
        self._in_flight: list[tuple[list[Item], list[bool]]] | None = None
        self._depth = 0

    def start(self) -> None:
        """Start the process (raises ``OSError`` if it cannot be)."""
        # In a session of its own: the server's signals (Ctrl-C, SIGHUP's reload, SIGTERM to
        # the group) are not for it; it ends when its worker closes the pipe or dies.
        self._proc = subprocess.Popen(
            self._command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            start_new_session=True,
        )
        assert self._proc.stdin is not None
        assert self._proc.stdout is not None
        self._requests = self._proc.stdin.fileno()
        self._answers = self._proc.stdout.fileno()
        os.set_blocking(self._answers, False)
        self._loop.add_reader(self._answers, self._on_answer)

    @property
    def depth(self) -> int:
        """Records handed over and not yet resolved."""
        if self._fallback is not None:
            return self._depth + self._fallback.depth
        return self._depth

    @property
    def fell_back(self) -> bool:
        """The process has ended: the fallback syncer does the work."""
        return self._fallback is not None

    @property
    def busy(self) -> bool:
        if self._fallback is not None:
            return self._fallback.busy
        return self._in_flight is not None

    def after_sync(self, batch: list[Item], inserted: list[bool]) -> None:
        """Resolve ``batch`` (committed) once the log is on disk. Loop thread only."""
        if self._fallback is not None:
            self._fallback.after_sync(batch, inserted)
            return
        self._depth += len(batch)
        self._waiting.append((batch, inserted))
        if self._in_flight is None:
            self._ask()

    def _ask(self) -> None:
        self._in_flight = list(self._waiting)
        self._waiting.clear()
        try:
            os.write(self._requests, b"s")
        except OSError as exc:
            self._broken(f"the sync process cannot be asked: {exc}")

    def _on_answer(self) -> None:
        try:
            data = os.read(self._answers, 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            self._broken(f"the sync process cannot be heard: {exc}")
            return
        if not data:
            self._broken(f"the sync process ended (exit status {self._exit_status()})")
            return
        self._answer += data
        if self._answer[:1] == b"e" and not self._answer.endswith(b"\n"):
            return  # the rest of the error's text is on its way
        answer, self._answer = self._answer, b""
        taken, self._in_flight = self._in_flight or [], None
        for batch, inserted in taken:
            self._depth -= len(batch)
            if answer == b"k":
                self._done(batch, inserted)
            else:
                self._failed(batch, OSError(answer[1:].decode("utf-8", "replace").strip()))
        if self._waiting:
            self._ask()
        if not self.busy:
            self._on_idle()

    def _broken(self, why: str) -> None:
        """Hand everything over to the fallback syncer; it fsyncs again for all of it."""
        log.error("%s: the log is fsynced by a thread from now on", why)
        self._close_pipes()
        fallback = self._fallback = self._fallback_factory()
        handed = [*(self._in_flight or []), *self._waiting]
        self._in_flight = None
        self._waiting.clear()
        self._depth = 0
        for batch, inserted in handed:
            fallback.after_sync(batch, inserted)

    def _exit_status(self) -> int | None:
        """The ended process's exit status (its pipe closes a moment before it is reaped)."""
        if self._proc is None:
            return None
        try:
            return self._proc.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            return None

    def _close_pipes(self) -> None:
        if self._answers >= 0:
            self._loop.remove_reader(self._answers)
        if self._proc is not None:
            for pipe in (self._proc.stdin, self._proc.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
        self._requests = self._answers = -1

    async def stop(self) -> None:
        """Wait for what was handed over to be resolved, then end the process."""
        while self._in_flight is not None and self._fallback is None:
            await asyncio.sleep(0.001)
        if self._fallback is not None:
            await self._fallback.stop()
        self._close_pipes()
        if self._proc is not None:
            try:
                await asyncio.to_thread(self._proc.wait, 5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                await asyncio.to_thread(self._proc.wait)
            self._proc = None


def start_syncer(
    loop: asyncio.AbstractEventLoop,
    wal: Syncable,
    command: list[str] | None,
    done: Callable[[list[Item], list[bool]], None],
    failed: Callable[[list[Item], Exception], None],
    on_idle: Callable[[], None],
) -> Syncer[Item]:
    """The sync process running ``command``, with the syncer thread (fsyncing ``wal``) to
    take over if it ends; the thread at once if there is no command or the process cannot
    be started."""

    def thread() -> WalSyncer[Item]:
        syncer = WalSyncer(loop, wal, done, failed, on_idle)
        syncer.start()
        return syncer

    if command is None:
        return thread()
    process = SyncProcess(loop, command, done, failed, on_idle, thread)
    try:
        process.start()
    except OSError as exc:
        log.error("no sync process (%s): the log is fsynced by a thread", exc)
        return thread()
    return process

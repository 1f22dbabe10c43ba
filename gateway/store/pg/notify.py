"""Waking a worker's follower when the change log grows: PostgreSQL's LISTEN/NOTIFY.

Every statement that appends to ``changes`` sends ``NOTIFY gateway_changes`` (the
``changes_notify`` trigger), delivered to every listening session when its transaction
commits, so never before the change is readable. :class:`ChangeListener` holds one
connection per worker that listens on the channel and calls ``on_change`` for each
notification; the follower then reads the change log (``gateway.feed``). A list change
made on any node reaches every worker of every node within a round trip instead of a
poll interval.

A notification is only a wake-up: nothing is lost if one is missed, since the follower
reads from its own version. So the follower keeps polling, slowly while the listener
is connected and at its usual interval while it is not (a lost connection, a server
restart): :meth:`ChangeListener.ensure` reconnects, at most once per ``retry`` seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Final

import asyncpg

log = logging.getLogger(__name__)

CHANNEL: Final = "gateway_changes"
#: What a server that is down, restarting or refusing raises.
_UNREACHABLE: Final = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class ChangeListener:
    def __init__(
        self,
        dsn: str,
        on_change: Callable[[], None],
        *,
        connect_timeout: float = 2.0,
        retry: float = 1.0,
    ) -> None:
        self.dsn = dsn
        self.on_change = on_change
        self.connect_timeout = connect_timeout
        self.retry = retry
        self._conn: asyncpg.Connection | None = None
        self._last_attempt = float("-inf")
        self.last_error = ""

    @property
    def listening(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def ensure(self) -> bool:
        """Listen, connecting if the connection is gone (not more often than ``retry``);
        whether it listens now. A change missed meanwhile is read by the next poll."""
        if self.listening:
            return True
        now = time.monotonic()
        if now - self._last_attempt < self.retry:
            return False
        self._last_attempt = now
        await self._drop()
        conn: asyncpg.Connection | None = None
        try:
            conn = await asyncpg.connect(self.dsn, timeout=self.connect_timeout)
            await conn.add_listener(CHANNEL, self._notified)
        except _UNREACHABLE as exc:
            if conn is not None:
                conn.terminate()
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("cannot listen for list changes, polling: %s", self.last_error)
            return False
        self._conn, self.last_error = conn, ""
        self.on_change()  # changes made while not listening are read now
        return True

    def _notified(self, conn: Any, pid: int, channel: str, payload: object) -> None:
        self.on_change()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await conn.close(timeout=2)
            except _UNREACHABLE:
                conn.terminate()

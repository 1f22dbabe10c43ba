"""The recorder's writer on PostgreSQL: a few dedicated connections, one batch on each.

:class:`PgBatchWriter` is the :class:`gateway.pipeline.BatchWriter` of a worker whose
store is PostgreSQL. It holds ``connections`` connections of its own (not the store's
pool: a check's commit never waits behind a report's query for a connection), each
with the batch statements prepared, and writes each batch with
:func:`gateway.store.pg.checks.write_batch` on a free one. Two connections by default:
while one batch's commit is on its way (a round trip and the server's WAL flush), the
next turn's records leave on the other instead of waiting for it.

A connection that breaks (the server restarted, a network cut) fails the batch it
carried (its callers get 503; the batch may or may not have committed, see
``gateway.pipeline``); it and the idle ones are closed and replaced by new ones when
next needed (a batch that only the server refused, a duplicate id, keeps its
connection); opening one is
bounded by ``connect_timeout`` seconds, so a server that is down fails batches quickly
instead of holding records.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import asyncpg

from gateway.model import CheckRecord, FeedbackRecord
from gateway.store.pg import checks

#: Connections (so batches in flight at once) of a worker's writer.
CONNECTIONS: Final = 2
#: Seconds to open a connection before the batch waiting for it fails.
CONNECT_TIMEOUT: Final = 5.0


class PgBatchWriter:
    def __init__(
        self,
        dsn: str,
        *,
        connections: int = CONNECTIONS,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        if connections < 1:
            raise ValueError("connections must be at least 1")
        self.dsn = dsn
        self.connections = connections
        self.connect_timeout = connect_timeout
        self._idle: list[asyncpg.Connection] = []
        self._closed = False

    @classmethod
    async def open(cls, dsn: str, *, connections: int = CONNECTIONS) -> PgBatchWriter:
        """Open every connection now (so a server that refuses is an error at start)."""
        writer = cls(dsn, connections=connections)
        try:
            for _ in range(connections):
                writer._idle.append(await writer._connect())
        except BaseException:
            await writer.close()
            raise
        return writer

    async def _connect(self) -> asyncpg.Connection:
        conn: asyncpg.Connection = await asyncpg.connect(self.dsn, timeout=self.connect_timeout)
        try:
            await checks.prepare(conn)
        except BaseException:
            conn.terminate()
            raise
        return conn

    async def write(
        self, checks_: Sequence[CheckRecord], feedback: Sequence[FeedbackRecord]
    ) -> list[bool]:
        """One batch in one transaction on a free connection, committed on return."""
        if self._closed:
            raise RuntimeError("the recorder's writer is closed")
        conn = self._idle.pop() if self._idle else await self._connect()
        try:
            inserted = await checks.write_batch(conn, checks_, feedback)
        except asyncpg.PostgresError:  # the server refused the batch: the connection is fine
            if conn.is_closed():  # unless it was the server shutting down
                self._drop_all(conn)
            else:
                self._idle.append(conn)
            raise
        except BaseException:  # the connection broke (or the task was cancelled midway)
            self._drop_all(conn)
            raise
        self._idle.append(conn)
        return inserted

    def _drop_all(self, conn: asyncpg.Connection) -> None:
        """A connection broke: so, most likely, did the idle ones (a server restart, a
        network cut). Each batch from now opens a new one rather than fail on a dead one."""
        conn.terminate()
        idle, self._idle = self._idle, []
        for other in idle:
            other.terminate()

    async def close(self) -> None:
        """Close the idle connections (the pipeline has drained: none carries a batch)."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close(timeout=5)

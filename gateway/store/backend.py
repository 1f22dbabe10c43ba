"""Which store ``GATEWAY_DB`` names, and what a worker records through on it.

A path is the embedded SQLite store (:class:`gateway.store.Store`); a ``postgresql://``
URL is PostgreSQL (:class:`gateway.store.pg.PgStore`), shared by several nodes. Both have
the same methods, arguments, results and errors, so the rest of the gateway holds an
:data:`AnyStore` and never asks which. What differs is how checks are recorded:
:func:`recorder_for` builds the recorder each backend needs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, TypeAlias

import asyncpg

from gateway import recordframes
from gateway.model import CheckRecord, FeedbackRecord
from gateway.recorder import Recorder
from gateway.recording import InlineWriter
from gateway.recordlog import SYNC_INTERVAL, RecordLog
from gateway.settings import Settings, db_label, is_postgres_url
from gateway.store.checks import CheckWriter
from gateway.store.errors import StoreUnavailable
from gateway.store.maintenance import Maintenance
from gateway.store.pg import PgStore
from gateway.store.pg.maintenance import PgMaintenance
from gateway.store.pg.notify import ChangeListener
from gateway.store.pg.recording import PgBatchWriter
from gateway.store.store import Store

if TYPE_CHECKING:
    from gateway.feed import Listener

AnyStore: TypeAlias = Store | PgStore


#: What opening a store, or a statement on it, raises when the file or server fails.
STORE_ERRORS: Final = (OSError, sqlite3.Error, asyncpg.PostgresError, asyncpg.InterfaceError)


async def open_store(db: str) -> AnyStore:
    """Open (and migrate) the store ``db`` names: a SQLite file or a PostgreSQL URL.
    :class:`~gateway.store.errors.StoreUnavailable` (the store named without a password)
    when it cannot be opened; ``SchemaError`` when its schema is newer than this code."""
    try:
        if is_postgres_url(db):
            return await PgStore.open(db)
        return await Store.open(db)
    except STORE_ERRORS as exc:  # TimeoutError is an OSError
        raise StoreUnavailable(
            f"cannot open the store {db_label(db)}: {type(exc).__name__}: {exc}"
        ) from exc


def recorder_for(settings: Settings, on_batch: Callable[[int, float], None]) -> Recorder:
    """The recorder of a worker whose store is ``settings.db``.

    SQLite: commits in the loop's thread without an fsync, made durable (``sync`` FULL)
    by a frame in the worker's record log (``<db>.records/``; with ``record_log_mb`` 0,
    by the worker's sync process fsyncing SQLite's log once for many), a writer thread
    for when the file's lock is held elsewhere, the upkeep on a thread. PostgreSQL:
    batches pipelined on the writer's own connections, durable when the server's commit
    returns, the upkeep awaited in the loop (see ``gateway.recorder``)."""
    db = settings.db
    if is_postgres_url(db):
        return Recorder(
            None,
            batch_writer_factory=lambda: PgBatchWriter.open(db),
            async_upkeep_factory=lambda: PgMaintenance.open(db),
            max_queue=settings.recorder_queue,
            on_batch=on_batch,
        )
    return Recorder(
        lambda: CheckWriter(db, synchronous=settings.sync).open(),
        upkeep_factory=lambda: Maintenance(db),
        max_queue=settings.recorder_queue,
        # Commits in the loop's thread need no fsync of their own: with FULL, their
        # records are written to the record log (or SQLite's log is fsynced by the sync
        # process) before anyone is answered.
        inline_factory=lambda: CheckWriter(db, synchronous="NORMAL").open(),
        durable=settings.sync == "FULL",
        on_batch=on_batch,
        record_log_factory=record_log_opener(db, settings.record_log_mb << 20)
        if settings.record_log_mb
        else None,
        store_delay=settings.store_delay_ms / 1000,
    )


def record_log_opener(
    db: str, ring_bytes: int, sync_interval: float = SYNC_INTERVAL
) -> Callable[[InlineWriter], RecordLog]:
    """Open a worker's record log, first recovering what free slots hold into ``db`` (with
    an fsync at each commit, so that the records are durable before the slot is reused)."""

    def restore(checks: list[CheckRecord], feedback: list[FeedbackRecord]) -> None:
        with CheckWriter(db, synchronous="FULL") as writer:
            writer.restore(checks, feedback)

    def open_log(inline: InlineWriter) -> RecordLog:
        with CheckWriter(db) as writer:
            store = writer.store_identity()
        return RecordLog.open(
            recordframes.directory_for(db),
            store=store,
            ring_bytes=ring_bytes,
            sync_store=inline.sync_wal,
            restore=restore,
            sync_interval=sync_interval,
        )

    return open_log


def listener_for(db: str) -> Callable[[Callable[[], None]], Listener] | None:
    """What wakes a follower of ``db``'s change log when it grows: PostgreSQL's LISTEN
    (``gateway.store.pg.notify``); None for SQLite, whose followers poll."""
    if is_postgres_url(db):
        return lambda wake: ChangeListener(db, wake)
    return None

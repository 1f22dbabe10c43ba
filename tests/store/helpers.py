"""Shared helpers of the store tests (plain functions: no plugin, no fixtures here)."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import msgspec

from gateway.model import CheckRecord, EntryInput, FeedbackRecord, MeasureFeedback
from gateway.recorder import Recorder
from gateway.recording import RecorderFull
from gateway.store import CheckWriter, Maintenance, Store, subject_index
from gateway.store.maintenance import TRICKLE_AFTER
from gateway.store.pg import PgStore
from gateway.store.pg.checks import write_batch
from gateway.store.pg.maintenance import PgMaintenance

T = TypeVar("T")

TODAY = date(2026, 11, 22)


@contextmanager
def write_lock_held(db: Path) -> Iterator[None]:
    """Another connection holds the SQLite file's write lock for the block (another
    worker's commit, an import, a step of the upkeep), then lets it go."""
    blocker = sqlite3.connect(db, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        yield
        blocker.execute("ROLLBACK")
    finally:
        blocker.close()


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def uscc(n: int) -> str:
    """A distinct, well-sorted subject code (the store does not validate codes)."""
    return f"91{n:016d}"


def entry(n: int, **fields: Any) -> EntryInput:
    values: dict[str, Any] = {
        "uscc": uscc(n),
        "subject_name": f"某某建设有限公司{n}",
        "list_type": "court_defaulter",
        "authority": "北京市第一中级人民法院",
        "reason": "有履行能力而拒不履行生效法律文书确定义务",
        "basis": "《最高人民法院关于公布失信被执行人名单信息的若干规定》第一条",
        "document_no": f"(2026)京01执{n}号",
        "listed_on": date(2026, 3, 1),
        "expires_on": date(2028, 3, 1),
        "source": "court",
        "source_id": f"C{n}",
    }
    values.update(fields)
    return EntryInput(**values)


def check(n: int, caller_id: int, **fields: Any) -> CheckRecord:
    values: dict[str, Any] = {
        "check_id": f"0193b6c2-0000-7000-8000-{n:012d}",
        "caller_id": caller_id,
        "matter": "bidding",
        "uscc": uscc(n % 7),
        "verdict": "restricted",
        "hit_ids": ("e1", "e2"),
        "measures": (("bid_ban", "apply"), ("no_fast_track", "suspended")),
        "snapshot_version": 12,
        "catalog_version": "2026.11.0+abc",
        "checked_at": f"2026-11-21T15:59:{n % 60:02d}.123+08:00",
        "latency_us": 180,
        "response": b'{"check_id": "%d", "verdict": "restricted"}' % n,
        "matter_code": "330100-001",
        "case_ref": f"CASE-{n}",
        "batch_id": None,
    }
    values.update(fields)
    return CheckRecord(**values)


def feedback(check_id: str, caller_id: int, **fields: Any) -> FeedbackRecord:
    values: dict[str, Any] = {
        "check_id": check_id,
        "caller_id": caller_id,
        "measures": (
            MeasureFeedback("bid_ban", True),
            MeasureFeedback("no_fast_track", False, "申请人主动放弃投标"),
        ),
        "outcome": "不予受理",
        "handled_by": "officer-7",
        "handled_at": "2026-11-21T16:20:00+08:00",
        "received_at": "2026-11-21T16:20:01.000+08:00",
        "body": b'{"measures": []}',
    }
    values.update(fields)
    return FeedbackRecord(**values)


def query(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read the file directly with plain sqlite3 (and close the connection), its subject
    index attached when it has one."""
    conn = sqlite3.connect(path)
    try:
        if subject_index.path_for(path).exists():
            conn.execute(*subject_index.attach_sql(path))
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def execute(path: Path, sql: str, params: tuple[Any, ...] = ()) -> None:
    """Write to the file directly with plain sqlite3 (test set-up only)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(sql, params)
    finally:
        conn.close()


# --- either backend ---------------------------------------------------------------------

#: A store of either backend (the ``open_store`` fixture's).
AnyStore = Store | PgStore
#: What the ``open_store`` fixture returns: ``async with await open_store() as store: ...``.
OpenStore = Callable[[], Awaitable[AnyStore]]


def _postgres_sql(sql: str) -> str:
    """SQLite's ``?`` parameters as PostgreSQL's ``$1``, ``$2``, ... (test SQL only: a ``?``
    inside a literal would be replaced too)."""
    numbers = iter(range(1, sql.count("?") + 1))
    return re.sub(r"\?", lambda _: f"${next(numbers)}", sql)


def _sqlite_args(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Dates as ISO text, as the SQLite store keeps them (sqlite3's own adapter is deprecated)."""
    return tuple(a.isoformat() if isinstance(a, date) else a for a in args)


async def fetch(store: AnyStore, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` (``?`` parameters) read from the store's database directly, on a
    connection of its own: sqlite3 on the file, asyncpg on the URL. Rows are tuples; dates
    are what each gives (text on SQLite, ``date`` on PostgreSQL)."""
    if isinstance(store, Store):
        return query(store.path, sql, _sqlite_args(args))
    conn = await asyncpg.connect(store.dsn)
    try:
        return [tuple(r) for r in await conn.fetch(_postgres_sql(sql), *args)]
    finally:
        await conn.close()


async def execute_sql(store: AnyStore, sql: str, *args: Any) -> None:
    """Run ``sql`` (``?`` parameters; without any, PostgreSQL takes several statements) on a
    connection of its own to the store's database (test set-up, or a write expected to fail)."""
    if isinstance(store, Store):
        execute(store.path, sql, _sqlite_args(args))
        return
    conn = await asyncpg.connect(store.dsn)
    try:
        await conn.execute(_postgres_sql(sql), *args)
    finally:
        await conn.close()


def integrity_error(store: AnyStore) -> type[Exception]:
    """What the backend's driver raises when a constraint or an append-only trigger refuses
    a statement: sqlite3's ``IntegrityError`` (``RAISE(ABORT, ...)``, CHECK), asyncpg's
    ``IntegrityConstraintViolationError`` (SQLSTATE class 23)."""
    if isinstance(store, Store):
        return sqlite3.IntegrityError
    return asyncpg.IntegrityConstraintViolationError


# --- staged imports and concurrency: either backend by name, runs compared ------------------


def target_of(store: AnyStore) -> str:
    """What ``GATEWAY_DB`` says for the store: its SQLite file or its PostgreSQL URL."""
    return str(store.path) if isinstance(store, Store) else store.dsn


_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d")
_UUID7 = re.compile(r"\b[0-9a-f]{12}7[0-9a-f]{19}\b")


def comparable(said: Any) -> str:
    """``said`` as JSON (keys sorted) with what differs by nature between two runs replaced:
    times by ``<time>``, entry ids (UUIDv7) by ``<entry n>`` in order of appearance."""
    text = _TIME.sub("<time>", msgspec.json.encode(said, order="deterministic").decode())
    seen: dict[str, str] = {}
    return _UUID7.sub(lambda m: seen.setdefault(m[0], f"<entry {len(seen)}>"), text)


async def entries_log(store: AnyStore) -> dict[str, Any]:
    """What writing entries leaves behind, read through the store (so the same on both
    backends): the change log in seq order (without the seqs, which may skip on
    PostgreSQL), every entry it names (in order of first mention) with its history, and the
    audit log. Seqs are checked unique and increasing here."""
    changes = await fetch(store, "SELECT seq, uscc, kind, ref, actor FROM changes ORDER BY seq")
    seqs = [c[0] for c in changes]
    assert seqs == sorted(set(seqs)), "seqs unique, in order"
    ids = list(dict.fromkeys(c[3] for c in changes if c[2] == "entry"))
    (count,) = (await fetch(store, "SELECT count(*) FROM entries"))[0]
    assert count == len(ids), "every entry has a change"
    return {
        "changes": [c[1:] for c in changes],
        "entries": [await store.get_entry(i) for i in ids],
        "histories": [await store.entry_history(i) for i in ids],
        "audit": [
            {k: v for k, v in a.items() if k != "id"} for a in await store.audit(limit=10_000)
        ],
    }


# --- recording checks and their upkeep on either backend --------------------------------

#: Writes one batch of checks and feedback; for each feedback, whether it was inserted.
WriteBatch = Callable[[Sequence[CheckRecord], Sequence[FeedbackRecord]], Awaitable[list[bool]]]


@asynccontextmanager
async def recorder(store: AnyStore) -> AsyncIterator[WriteBatch]:
    """A batch writer as the recorder has one, on a connection of its own: a
    :class:`CheckWriter` on SQLite (its writes run in a thread, as the recorder's do, so
    several may run at once), :func:`gateway.store.pg.checks.write_batch` on PostgreSQL."""
    if isinstance(store, Store):
        with CheckWriter(store.path) as writer:

            async def write_sqlite(
                checks: Sequence[CheckRecord], feedback: Sequence[FeedbackRecord] = ()
            ) -> list[bool]:
                return await asyncio.to_thread(writer.write, checks, feedback)

            yield write_sqlite
        return
    conn = await asyncpg.connect(store.dsn)
    try:

        async def write_postgres(
            checks: Sequence[CheckRecord], feedback: Sequence[FeedbackRecord] = ()
        ) -> list[bool]:
            return await write_batch(conn, checks, feedback)

        yield write_postgres
    finally:
        await conn.close()


async def record(
    store: AnyStore, checks: Sequence[CheckRecord], feedback: Sequence[FeedbackRecord] = ()
) -> list[bool]:
    """Record one batch through a new :func:`recorder`."""
    async with recorder(store) as write:
        return await write(checks, feedback)


class Upkeep:
    """The store's upkeep, :class:`Maintenance` (SQLite) or :class:`PgMaintenance`, behind
    the async methods of the latter (SQLite's run in the calling thread)."""

    def __init__(self, store: AnyStore) -> None:
        self.inner: Maintenance | PgMaintenance = (
            Maintenance(store.path) if isinstance(store, Store) else PgMaintenance(store.dsn)
        )

    async def run_once(
        self,
        *,
        busy: bool | Callable[[], bool] = False,
        backlog: int = 1_000_000,
        trickle_after: int = TRICKLE_AFTER,
    ) -> int:
        limits = {"backlog": backlog, "trickle_after": trickle_after}
        if isinstance(self.inner, Maintenance):
            return self.inner.run_once(busy=busy, **limits)
        return await self.inner.run_once(busy=busy, **limits)

    async def index_subjects(self, limit: int = 1_000) -> int:
        if isinstance(self.inner, Maintenance):
            return self.inner.index_subjects(limit)
        return await self.inner.index_subjects(limit)

    async def roll_up_loop(self, limit: int = 2_000) -> int:
        if isinstance(self.inner, Maintenance):
            return self.inner.roll_up_loop(limit)
        return await self.inner.roll_up_loop(limit)

    async def pending(self) -> int:
        if isinstance(self.inner, Maintenance):
            return self.inner.pending()
        return await self.inner.pending()

    async def close(self) -> None:
        if isinstance(self.inner, Maintenance):
            self.inner.close()
        else:
            await self.inner.close()

    async def __aenter__(self) -> Upkeep:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def batch_checks_commit_whole(recorder: Recorder, caller_id: int) -> set[str]:
    """On a started recorder whose commits take at most 10 records: 5 single checks, then
    a batch check of 25 with a duplicate id (refused whole: 503, none of it stored, not
    its first 10), then one of 25 (recorded); stops the recorder. The ids to be stored."""
    singles = [recorder.submit(check(n, caller_id)) for n in range(1, 6)]
    assert all(await asyncio.gather(*singles))
    refused = recorder.submit_many([check(n, caller_id) for n in [*range(6, 30), 6]])
    try:
        await refused
    except RecorderFull:
        pass
    else:
        raise AssertionError("a batch with a duplicate check id was recorded")
    screened = recorder.submit_many([check(n, caller_id) for n in range(30, 55)])
    assert await screened is True
    await recorder.stop()
    return {check(n, caller_id).check_id for n in [*range(1, 6), *range(30, 55)]}


async def submit_in_turns(
    recorder: Recorder,
    caller_id: int,
    acknowledged: Callable[[str], None],
    *,
    turns: int = 30,
    per_turn: int = 10,
    watch_every: int = 1,
) -> None:
    """Submit ``turns`` × ``per_turn`` checks, one turn of the event loop for each
    ``per_turn``; call ``acknowledged(check_id)`` as the future of every ``watch_every``-th
    of a turn resolves; wait for all of them, then stop the recorder."""
    futures = []
    for turn in range(turns):
        for n in range(per_turn):
            record = check(turn * per_turn + n + 1, caller_id)
            future = recorder.submit(record)
            if n % watch_every == 0:
                future.add_done_callback(lambda _, cid=record.check_id: acknowledged(cid))
            futures.append(future)
        await asyncio.sleep(0)
    assert all(await asyncio.gather(*futures))
    await recorder.stop()

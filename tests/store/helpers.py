"""Shared helpers of the store tests (plain functions: no plugin, no fixtures here)."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Awaitable, Callable, Coroutine
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from gateway.model import CheckRecord, EntryInput, FeedbackRecord, MeasureFeedback
from gateway.store import Store
from gateway.store.pg import PgStore

T = TypeVar("T")

TODAY = date(2026, 11, 22)


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
    """Read the file directly with plain sqlite3 (and close the connection)."""
    conn = sqlite3.connect(path)
    try:
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

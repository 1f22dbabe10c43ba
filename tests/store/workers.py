"""Functions run in separate processes by the concurrency tests (spawned, so importable)."""

from __future__ import annotations

import asyncio
import time
from datetime import date

from gateway.model import Grade
from gateway.store import CheckWriter, Store, backend
from tests.store.helpers import check, entry, feedback


def _wait_until(start_at: float) -> None:
    delay = start_at - time.time()
    if delay > 0:
        time.sleep(delay)


def open_store(path: str, start_at: float) -> int:
    """Open (and so migrate) the store at ``start_at``; return the schema version seen."""
    _wait_until(start_at)

    async def main() -> int:
        store = await Store.open(path)
        try:
            return store.schema_version
        finally:
            await store.close()

    return asyncio.run(main())


def write_lists(target: str, worker: int, batches: int, batch_size: int, start_at: float) -> int:
    """Import entries, move some through the lifecycle, set grades, on the store ``target``
    names (a SQLite file or a PostgreSQL URL); return the entries written."""
    _wait_until(start_at)

    async def main() -> int:
        async with await backend.open_store(target) as store:
            written = 0
            for b in range(batches):
                base = worker * 1_000_000 + b * batch_size
                rows = [
                    entry(base + i, source=f"worker{worker}", source_id=str(base + i))
                    for i in range(batch_size)
                ]
                result = await store.upsert_entries(rows, f"worker{worker}")
                written += result.inserted
                await store.repair(result.entry_ids[0], date(2026, 11, 1), "修复决定1号", "w")
                await store.open_objection(result.entry_ids[1], date(2026, 11, 2), "异议", "w")
                await store.put_grade(f"G{worker}-{b}", Grade("good", "zj"), "w")
            return written

    return asyncio.run(main())


def write_checks(path: str, worker: int, caller_id: int, batches: int, start_at: float) -> int:
    """Record batches of checks, each with feedback for a check of the previous batch."""
    _wait_until(start_at)
    writer = CheckWriter(path)
    try:
        written = 0
        for b in range(batches):
            base = worker * 1_000_000 + b * 100
            checks = [check(base + i, caller_id) for i in range(100)]
            fb = [feedback(check(base - 100, caller_id).check_id, caller_id)] if b else []
            assert writer.write(checks, fb) == [True] * len(fb)
            written += len(checks)
        return written
    finally:
        writer.close()

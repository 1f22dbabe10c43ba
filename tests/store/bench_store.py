"""Rough throughput of the store's bulk paths (not a test; prints figures).

    .venv/bin/python -m tests.store.bench_store [--rows 100000] [--checks 51200]

* ``upsert_entries``: fresh rows in batches of 5,000, then the same rows again
  (all unchanged);
* ``CheckWriter.write``: batches of 256 checks with a ~1 KB response each, into a
  new file (a file already holding millions of checks is slower: the
  ``(uscc, checked_at)`` index takes random inserts).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from gateway.store import CheckWriter, Store
from gateway.store.rows import new_ids
from tests.store.helpers import check, entry, uscc


async def bench_upsert(path: Path, rows: int, batch: int, synchronous: str) -> None:
    data = [entry(n, source="bench", source_id=str(n)) for n in range(rows)]
    async with await Store.open(path, synchronous=synchronous) as store:
        for label in ("fresh", "unchanged"):
            started = time.perf_counter()
            for i in range(0, rows, batch):
                await store.upsert_entries(data[i : i + batch], "bench")
            elapsed = time.perf_counter() - started
            print(
                f"upsert_entries {label:9s} synchronous={synchronous:6s} "
                f"{rows:,} rows in batches of {batch:,}: {rows / elapsed:,.0f} rows/s"
            )


async def make_caller(path: Path) -> int:
    async with await Store.open(path) as store:
        caller, _ = await store.create_key("bench", "bench", ["check"])
        return caller.caller_id


def bench_checks(path: Path, total: int, batch: int, synchronous: str) -> None:
    """Realistic keys: time-ordered check ids and times, subjects spread over 10^6 codes."""
    caller_id = asyncio.run(make_caller(path))
    response = b'{"verdict": "restricted", "measures": [' + b"x" * 1000 + b"]}"
    start = datetime(2026, 11, 21, 15, 0, tzinfo=timezone(timedelta(hours=8)))
    pick = random.Random(1).randrange
    records = [
        check(
            n,
            caller_id,
            check_id=str(uuid.UUID(check_id)),
            uscc=uscc(pick(1_000_000)),
            checked_at=(start + timedelta(milliseconds=n)).isoformat(timespec="milliseconds"),
            response=response,
        )
        for n, check_id in enumerate(new_ids(total))
    ]
    with CheckWriter(path, synchronous=synchronous) as writer:
        started = time.perf_counter()
        slowest = 0.0
        for i in range(0, total, batch):
            t0 = time.perf_counter()
            writer.write(records[i : i + batch])
            slowest = max(slowest, time.perf_counter() - t0)
        elapsed = time.perf_counter() - started
    print(
        f"CheckWriter.write synchronous={synchronous:6s} {total:,} checks in batches of "
        f"{batch}: {total / elapsed:,.0f} rows/s ({elapsed / (total / batch) * 1000:.1f} ms "
        f"a batch, slowest {slowest * 1000:.0f} ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--checks", type=int, default=51_200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for synchronous in ("FULL", "NORMAL"):
            asyncio.run(
                bench_upsert(Path(tmp) / f"u-{synchronous}.db", args.rows, args.batch, synchronous)
            )
        for synchronous in ("FULL", "NORMAL"):
            bench_checks(Path(tmp) / f"c-{synchronous}.db", args.checks, 256, synchronous)


if __name__ == "__main__":
    main()

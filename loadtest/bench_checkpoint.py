"""What a WAL checkpoint does to the log's fsyncs beside it (``make bench-checkpoint``).

A store gets ``--mib`` MiB of recorded checks in its write-ahead log; then, while a
thread stands in for the recorder's syncer (append 16 KiB to a file of its own and
``fdatasync`` it, every half millisecond), the log is checkpointed, once by SQLite's
own checkpoint (``synchronous = FULL``: the copy, then one fsync of the database file)
and once by the gateway's paced one (``gateway.store.checkpoint``: the same copy, written
back a few MiB at a time). Reported for each: the checkpoint's duration and the
stand-in's fdatasync latencies while it ran (median, p99, worst), the figure a check's
acknowledgement waits on under ``GATEWAY_SYNC=FULL``.

    python -m loadtest.bench_checkpoint --mib 512 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from gateway.model import CheckRecord
from gateway.store import CheckWriter, Maintenance, Store


def caller_id(db: Path) -> int:
    """A store at ``db`` (created, migrated) with a caller; its id."""

    async def create() -> int:
        async with await Store.open(db) as store:
            caller, _ = await store.create_key("bench", "bench", ["check"])
            return caller.caller_id

    return asyncio.run(create())


def fill(db: Path, who: int, mib: int) -> None:
    """Checks with 1 KiB responses until the log holds ``mib`` MiB (nothing copied yet)."""
    body, n = b"x" * 1024, 0
    with CheckWriter(db, synchronous="NORMAL") as writer:
        while Maintenance(db).wal_bytes() < mib * 1024 * 1024:
            batch = []
            for _ in range(2_000):
                n += 1
                batch.append(
                    CheckRecord(
                        check_id=f"0193b6c2-0000-7000-8000-{n:012d}",
                        caller_id=who,
                        matter="bidding",
                        uscc=f"91{n:016d}",
                        verdict="clear",
                        hit_ids=(),
                        measures=(),
                        snapshot_version=1,
                        catalog_version="bench",
                        checked_at="2026-12-06T10:00:00.000+08:00",
                        latency_us=100,
                        response=body,
                    )
                )
            writer.write(batch)


def beside(action: Callable[[], object], scratch: Path) -> tuple[float, list[float]]:
    """Run ``action`` while a thread fdatasyncs a file of its own; (seconds, latencies)."""
    latencies: list[float] = []
    running = threading.Event()
    done = threading.Event()

    def syncer() -> None:
        fd = os.open(scratch / "log.tmp", os.O_RDWR | os.O_CREAT | os.O_TRUNC)
        chunk = os.urandom(16 * 1024)
        try:
            while not done.is_set():
                os.write(fd, chunk)
                started = time.perf_counter()
                os.fdatasync(fd)
                if running.is_set():
                    latencies.append(time.perf_counter() - started)
                time.sleep(0.0005)
        finally:
            os.close(fd)

    thread = threading.Thread(target=syncer)
    thread.start()
    time.sleep(0.3)
    running.set()
    started = time.perf_counter()
    action()
    took = time.perf_counter() - started
    running.clear()
    done.set()
    thread.join()
    return took, latencies


def sqlite_checkpoint(db: Path) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    conn.close()


def paced_checkpoint(db: Path) -> None:
    maintenance = Maintenance(db)
    maintenance.checkpoint()
    maintenance.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=512, help="MiB of log to checkpoint")
    parser.add_argument("--rounds", type=int, default=2)
    opts = parser.parse_args(argv)
    results: dict[str, list[tuple[float, list[float]]]] = {"sqlite": [], "paced": []}
    with tempfile.TemporaryDirectory(
        dir=Path("var").resolve() if Path("var").is_dir() else None
    ) as tmp:
        scratch = Path(tmp)
        for round_no in range(1, opts.rounds + 1):
            for name, checkpoint in (("sqlite", sqlite_checkpoint), ("paced", paced_checkpoint)):
                db = scratch / f"{name}-{round_no}.db"
                who = caller_id(db)
                # A connection kept open: the last one to close would checkpoint the log.
                keeper = sqlite3.connect(db)
                keeper.execute("SELECT count(*) FROM sqlite_master").fetchone()
                fill(db, who, opts.mib)
                os.sync()  # the fill's own dirty pages are not the checkpoint's
                took, latencies = beside(lambda db=db, cp=checkpoint: cp(db), scratch)  # type: ignore[misc]
                results[name].append((took, latencies))
                latencies.sort()
                print(
                    f"round {round_no} {name:6}: checkpoint {took:.2f} s; log fdatasync "
                    f"median {statistics.median(latencies) * 1e3:.2f} ms, "
                    f"p99 {latencies[int(len(latencies) * 0.99)] * 1e3:.2f} ms, "
                    f"worst {latencies[-1] * 1e3:.1f} ms ({len(latencies)} syncs)"
                )
                keeper.close()
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{db}{suffix}").unlink(missing_ok=True)
    worst = {name: max(max(lat) for _, lat in runs) for name, runs in results.items()}
    print(
        f"{opts.mib} MiB of log: worst log fdatasync during the checkpoint "
        f"{worst['sqlite'] * 1e3:.1f} ms with SQLite's, {worst['paced'] * 1e3:.1f} ms paced "
        f"({worst['sqlite'] / worst['paced']:.0f}x lower)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

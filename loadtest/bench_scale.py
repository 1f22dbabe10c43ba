"""The scale profile (``make bench-scale``): a gateway over 10,000,000 entries against one
over 100,000, same run, same settings.

For each size a store is generated once under ``var/bench-scale/`` (realistic rows, one or
two entries a subject, codes in increasing order so the load is quick; kept for the next
run), then a gateway is started on it and measured: **cold start** (process start to
``/readyz`` 200: the snapshot built from the store), **RSS per worker** after the build,
and **throughput** of ``GET /v1/check`` under wrk, half hits and half misses, the two
gateways in turn round after round.

    python -m loadtest.bench_scale --sizes 100000 10000000 --rounds 3 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import statistics
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from gateway.identifiers.uscc import calc_check_digit, calc_organisation_check_digit
from gateway.model import EntryInput
from gateway.store import Store
from gateway.store.staging import StagingFile
from loadtest.datagen import LIST_DETAILS, OTHER_LIST_TYPES, REGIONS
from loadtest.harness import (
    REPO,
    BenchError,
    Server,
    create_key,
    ensure_wrk,
    fetch,
    remove_record_logs,
    run_wrk,
)
from loadtest.procs import wait_quiet

#: Disk a generated store takes an entry, with its snapshot and the import's staging, and
#: room to spare (9.7 GB for 10,100,000 entries in session 16).
BYTES_AN_ENTRY = 1_200
#: The sizes profiled unless told otherwise: the target's and the reference.
SIZES = (100_000, 10_000_000)

#: Regions of listed subjects (sorted: codes are generated in increasing order).
LISTED_REGIONS = sorted(code for code, _, _ in REGIONS)
#: A region no listed subject is in: its codes are valid and never hit.
CLEAR_REGION = "659001"
_NAMES = "华鑫恒泰盛达宏远金瑞丰安信博通嘉德汇"


def code_of(region: str, number: int) -> str:
    eight = f"{number:08d}"
    first17 = "91" + region + eight + calc_organisation_check_digit(eight)
    return first17 + calc_check_digit(first17)


def populate(db: Path, entries: int, seed: int = 5) -> list[str]:
    """A store of ``entries`` active entries (every fifth subject has two); return a
    sample of listed codes. Written through a staging file and applied in bulk."""
    rnd, today = random.Random(seed), date.today()
    regions = {code: (city, abbr) for code, city, abbr in REGIONS}
    per_region = entries // len(LISTED_REGIONS) + 1
    staging, row = StagingFile(db.parent), 0
    listed: list[str] = []
    started = time.monotonic()
    try:
        for region in LISTED_REGIONS:
            city, abbr = regions[region]
            for number in range(1, per_region + 1):
                uscc = code_of(region, number)
                if len(listed) < 20_000 and rnd.random() < 0.01:
                    listed.append(uscc)
                for _ in range(2 if number % 5 == 0 else 1):
                    if row == entries:
                        break
                    row += 1
                    list_type = "court_defaulter" if row % 2 else rnd.choice(OTHER_LIST_TYPES)
                    authority, reason, basis, doc = LIST_DETAILS[list_type]
                    listed_on = today - timedelta(days=30 + row % 600)
                    staging.add(
                        row,
                        EntryInput(
                            uscc=uscc,
                            subject_name=f"{city}{''.join(rnd.sample(_NAMES, 4))}有限公司",
                            list_type=list_type,
                            authority=authority.format(city=city),
                            reason=reason,
                            basis=basis,
                            document_no=doc.format(year=listed_on.year, abbr=abbr, n=row % 9999),
                            listed_on=listed_on,
                            expires_on=today + timedelta(days=200 + row % 900),
                            source="scale",
                            source_id=f"S{row}",
                        ),
                    )
                    if row % 500_000 == 0:
                        print(f"  staged {row:,} rows ({time.monotonic() - started:.0f} s)")
        asyncio.run(_apply(db, staging))
    finally:
        staging.close()
    print(f"  {entries:,} entries applied in {time.monotonic() - started:.0f} s")
    return listed


async def _apply(db: Path, staging: StagingFile) -> None:
    async with await Store.open(db, synchronous="NORMAL") as store:
        async for done, _ in store.apply_staging(staging.seal(), "bench-scale", 1_000_000):
            print(f"  applied {done:,} rows")


def check_space(out: Path, entries: int) -> None:
    """Refuse to start generating a store the disk cannot hold (its file, its snapshot and
    the import's staging: about :data:`BYTES_AN_ENTRY` an entry, measured at 10,000,000)."""
    need, free = entries * BYTES_AN_ENTRY, shutil.disk_usage(out).free
    if free < need:
        raise BenchError(
            f"a store of {entries:,} entries needs about {need / 1e9:.1f} GB free under {out}, "
            f"{free / 1e9:.1f} GB are (make bench: BENCH_ARGS=--no-scale skips the profile)"
        )


def prepare(out: Path, entries: int) -> tuple[Path, str, Path]:
    """The store (generated once), a key, and the codes to query: half hits, half misses."""
    db = out / f"store-{entries}.db"
    meta = out / f"store-{entries}.json"
    env = {**os.environ, "GATEWAY_DB": str(db)}
    if not meta.exists():
        check_space(out, entries)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        remove_record_logs(db)  # an older store's
        print(f"generating {entries:,} entries into {db} ...")
        listed = populate(db, entries)
        key = create_key(env, "bench", "check")
        meta.write_text(json.dumps({"key": key, "listed": listed}))
    data = json.loads(meta.read_text())
    rnd = random.Random(3)
    hits = rnd.sample(data["listed"], min(500, len(data["listed"])))  # half hits
    codes = hits + [code_of(CLEAR_REGION, n) for n in range(1, len(hits) + 1)]
    rnd.shuffle(codes)
    codes_file = out / f"codes-{entries}.txt"
    codes_file.write_text("\n".join(codes) + "\n")
    return db, data["key"], codes_file


def worker_memory_mb(server: Server) -> list[tuple[float, float, float]]:
    """(RSS, PSS, peak RSS) in MiB of each process of the server's group but its leader
    (granian's workers). PSS divides shared pages (a mapped snapshot) among the processes
    sharing them."""
    sizes = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.getpgid(int(pid)) != server.proc.pid or int(pid) == server.proc.pid:
                continue
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        rss = re.search(r"^Rss:\s+(\d+)", rollup, re.M)
        pss = re.search(r"^Pss:\s+(\d+)", rollup, re.M)
        peak = re.search(r"^VmHWM:\s+(\d+)", status, re.M)
        if rss and pss and peak:
            sizes.append((int(rss[1]) / 1024, int(pss[1]) / 1024, int(peak[1]) / 1024))
    return sizes


def start(out: Path, entries: int, db: Path, opts: Any) -> tuple[Server, float]:
    env = {**os.environ, "GATEWAY_DB": str(db)}
    started = time.monotonic()
    cmd = [sys.executable, "-m", "gateway", "serve", "--workers", str(opts.workers)]
    server = Server(f"gateway-{entries}", cmd, REPO, env, out)
    server.wait_ready("/readyz", opts.start_timeout)
    return server, time.monotonic() - started


def _wait_saved(db: Path, timeout: float) -> None:
    """Until the worker has saved the snapshot it built (it does so in the background)."""
    deadline = time.monotonic() + timeout
    while not Path(f"{db}.snapshot").exists():
        if time.monotonic() > deadline:
            raise BenchError(f"{db}.snapshot not saved after {timeout:g} s")
        time.sleep(0.2)


def profile(opts: Any) -> dict[int, dict[str, Any]]:
    """Generate the stores of ``opts.sizes`` (once), measure each gateway's cold start and
    memory, then their throughput round after round; print the table, write
    ``result.json`` under ``opts.out`` and return what it holds."""
    opts.out = opts.out.resolve()
    opts.out.mkdir(parents=True, exist_ok=True)
    wrk = ensure_wrk()
    prepared = {n: prepare(opts.out, n) for n in opts.sizes}
    servers: dict[int, Server] = {}
    results: dict[int, dict[str, Any]] = {}
    try:
        for n in opts.sizes:  # one at a time: each cold start has the machine to itself
            db = prepared[n][0]
            Path(f"{db}.snapshot").unlink(missing_ok=True)
            result: dict[str, Any] = {"rounds": []}
            for origin in ("store", "file"):  # built from the store (and saved), then mapped
                server, cold = start(opts.out, n, db, opts)
                servers[n] = server
                ready = json.loads(fetch(server.url + "/readyz")[1])
                memory = worker_memory_mb(server)
                result[origin] = {"cold_start_s": cold, "memory_mb": memory, "ready": ready}
                shown = ", ".join(f"RSS {r:.0f} / PSS {p:.0f} / peak {h:.0f}" for r, p, h in memory)
                print(
                    f"{n:>11,} entries from the {origin}: cold start {cold:.1f} s, "
                    f"{shown} MiB per worker ({ready.get('entries')} entries)"
                )
                if origin == "store":
                    _wait_saved(db, opts.start_timeout)
                    server.stop()
            results[n] = result
            run_wrk(wrk, server, prepared[n][2], prepared[n][1], opts, 3)  # warm-up
        # Each gateway's upkeep works on after its load: not during the other's run.
        groups = [server.proc.pid for server in servers.values()]
        wait_quiet(groups)
        for _ in range(opts.rounds):
            for n in opts.sizes:
                res = run_wrk(wrk, servers[n], prepared[n][2], prepared[n][1], opts, opts.duration)
                wait_quiet(groups)
                if res["non_2xx"]:
                    raise servers[n].failed(f"{res['non_2xx']:.0f} non-2xx responses")
                results[n]["rounds"].append(res)
                print(
                    f"{n:>11,} entries: {res['rps']:8,.0f} req/s  p50 {res['p50_ms']:.2f} ms  "
                    f"p99 {res['p99_ms']:.2f} ms"
                )
    finally:
        for server in servers.values():
            server.stop()
    first = results[opts.sizes[0]]["rounds"]
    base = statistics.median(r["rps"] for r in first)
    print(
        "\n    entries   start: store    file   RSS MiB: store   file   req/s (median)  ratio"
        "   rounds' ratios: median (range)"
    )
    for n in opts.sizes:
        rps = statistics.median(r["rps"] for r in results[n]["rounds"])
        # Each round's own ratio: the sizes are measured seconds apart, so a drift of the
        # machine's speed between rounds does not pair one's fast round with another's slow.
        paired = sorted(
            r["rps"] / f["rps"] for r, f in zip(results[n]["rounds"], first, strict=True)
        )
        results[n]["rps_median"] = rps
        results[n]["round_ratio_median"] = statistics.median(paired)
        store, file = results[n]["store"], results[n]["file"]
        print(
            f"{n:>11,}   {store['cold_start_s']:10.1f} s {file['cold_start_s']:5.1f} s   "
            f"{max(m[0] for m in store['memory_mb']):12.0f}  "
            f"{max(m[0] for m in file['memory_mb']):5.0f}   {rps:14,.0f}   {rps / base:5.3f}"
            f"   {statistics.median(paired):.3f} ({paired[0]:.3f}-{paired[-1]:.3f})"
        )
    (opts.out / "result.json").write_text(json.dumps(results, indent=2, default=str))
    return results


def options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--sizes", type=int, nargs="+", default=list(SIZES))
    add("--workers", type=int, default=1)
    add("--rounds", type=int, default=3)
    add("--duration", type=float, default=10)
    add("--connections", type=int, default=32)
    add("--start-timeout", type=float, default=600)
    add("--out", type=Path, default=REPO / "var" / "bench-scale")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    options(parser)
    try:
        profile(parser.parse_args(argv))
    except BenchError as exc:
        print(f"scale profile failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

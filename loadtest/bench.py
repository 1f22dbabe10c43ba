"""GET /v1/check of the gateway as ratios to the floor and limit apps (``make bench``).

Same server (granian, asgi), workers and wrk settings for the three, measured in turn round
after round; then the gateway paced at half its throughput, a 1,000-code batch check, and
the scale profile (``loadtest.bench_scale``: 100,000 against 10,000,000 entries, the stores
generated once under var/bench-scale/; ``--no-scale`` skips it). Prints the tables, writes
var/bench/result.json. See docs/performance.md. The reference apps: ../shared/bench, or
``BENCH_REF_DIR``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.request import Request, urlopen

from loadtest import bench_scale
from loadtest.bench_summary import HEADER, ROW, STATS, Run, show, summarise
from loadtest.harness import (
    REPO,
    BenchError,
    Server,
    ensure_wrk,
    fetch,
    load_population,
    run_wrk,
    settle,
)
from loadtest.pg_server import PostgresServer

GRANIAN = str(Path(sys.executable).parent / "granian")  # the venv's, beside its python
#: ``gateway-unsynced`` (with ``--unsynced``): the gateway on a copy of the same database with
#: ``GATEWAY_SYNC=NORMAL``, committing without the log's fsync (not durable): what the durable
#: record costs, measured in the same run. ``gateway-walsync`` (``--apps``): the gateway on a
#: copy with ``GATEWAY_RECORD_LOG_MB=0``, durable by fsyncs of SQLite's log (by its sync
#: process) instead of its record log: the durable path before the record log.
#: ``gateway-eager`` (``--apps``): ``GATEWAY_STORE_DELAY_MS=0``, each turn's checks inserted
#: into SQLite before their frame (session 13's gateway), not held behind it.
APPS = ("floor", "limit", "gateway", "gateway-walsync", "gateway-eager", "gateway-unsynced")
#: The gateway variants, and the environment each adds to the gateway's (on a copy of its
#: database, so that neither's recording or upkeep touches the other's).
VARIANTS = {
    "gateway-walsync": {"GATEWAY_RECORD_LOG_MB": "0"},
    "gateway-eager": {"GATEWAY_STORE_DELAY_MS": "0"},
    "gateway-unsynced": {"GATEWAY_SYNC": "NORMAL"},
}
GATEWAYS = ("gateway", *VARIANTS)
#: What ``--apps`` measures unless told otherwise (``--unsynced`` adds the fourth).
DEFAULT_APPS = ("floor", "limit", "gateway")


def prepare_gateway(run: Path, opts: Any, env: dict[str, str]) -> tuple[str, str]:
    """Data, database and key; return the key and one listed code."""
    entries, _, key = load_population(run, opts, env, "bench")
    return key, entries.read_text(encoding="utf-8").splitlines()[1].split(",", 1)[0]


def start(app: str, opts: Any, run: Path, env: dict[str, str], probe: Any) -> tuple[Server, Path]:
    """Start ``app``, check that it answers (``probe``: key, listed code); return it, codes."""
    workers = ["--workers", str(opts.workers)]
    if app in GATEWAYS:
        server = Server(app, [sys.executable, "-m", "gateway", "serve", *workers], REPO, env, run)
        server.wait_ready("/healthz", opts.start_timeout)
        key, code = probe
        status, body = fetch(f"{server.url}/v1/check?uscc={code}&matter=bidding", key)
        if status != 200 or not json.loads(body).get("hits"):
            raise server.failed(f"check of the listed {code}: {status} {body[:300]!r}")
        return server, run / "codes.txt"
    refs = Path(__file__).resolve().parents[2] / "shared" / "bench"
    cmd = [GRANIAN, "--interface", "asgi", *workers, "--backlog", "2048", f"{app}_app:app"]
    server = Server(app, cmd, Path(os.environ.get("BENCH_REF_DIR") or refs), env, run)
    server.wait_ready("/codes?n=1", opts.start_timeout)
    codes = run / f"{app}_codes.txt"
    codes.write_text("\n".join(json.loads(fetch(server.url + "/codes?n=1000")[1])) + "\n")
    return server, codes


def variant_env(env: dict[str, str], app: str) -> dict[str, str]:
    """The environment of a variant of the gateway (:data:`VARIANTS`): a copy of the database
    of its own (SQLite's backup: consistent, log included). Its subject index is built at
    its start."""
    source = Path(env["GATEWAY_DB"])
    copy = source.with_name(f"{app}.db")
    with (
        contextlib.closing(sqlite3.connect(source)) as src,
        contextlib.closing(sqlite3.connect(copy)) as dst,
    ):
        src.backup(dst)
    return env | {"GATEWAY_DB": str(copy)} | VARIANTS[app]


def batch_ms(server: Server, key: str, codes: list[str], runs: int) -> list[tuple[float, float]]:
    """(wall, server) times in ms of ``runs`` sequential batch checks, after one untimed
    call; the server's own time is its ``Server-Timing: app;dur=`` header."""
    body, times = json.dumps({"matter": "bidding", "uscc": codes}).encode(), []
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    for _ in range(runs + 1):
        t0 = time.perf_counter()
        try:
            with urlopen(Request(server.url + "/v1/check/batch", body, headers), timeout=60) as r:
                status, data, timing = r.status, r.read(), r.headers.get("server-timing", "")
        except HTTPError as exc:
            status, data, timing = exc.code, exc.read(), ""
        wall = (time.perf_counter() - t0) * 1000
        found = re.search(r"dur=([\d.]+)", timing)
        times.append((wall, float(found[1]) if found else float("nan")))
        results = json.loads(data).get("results", []) if status == 200 else []
        if len(results) != len(codes) or any("error" in r for r in results):
            raise server.failed(f"batch of {len(codes)}: {status}, {len(results)} results")
    return times[1:]


def paced_runs(
    wrk: str, servers: dict[str, tuple[Server, Path, str]], measured: list[Run], opts: Any
) -> dict[str, Run]:
    """The gateway paced at ``opts.paced`` of its median throughput: each connection waits
    ``connections / target`` (less a typical latency) on average between requests, the
    waits drawn from an exponential distribution (``wrk_codes.lua``); p50 and p99 there.
    Then the gateway's variants and the floor, if measured, with the same waits: what the
    variant's way of recording costs in the tail, and what the machine and the server cost
    at that rate for a bare lookup (the reference for the gateway's p99)."""
    target = opts.paced * statistics.median(r["rps"] for r in measured)
    delay_ms = max(1000 * opts.connections / target - 1.0, 0.1)
    paced: dict[str, Run] = {}
    for app in ("gateway", *VARIANTS, "floor"):
        if app not in servers:
            continue
        res = paced[app] = run_wrk(wrk, *servers[app], opts, opts.duration, delay_ms)
        res["target_rps"] = target
        settle(servers, res)
        print(
            f"{app} paced at {opts.paced:.0%} of the gateway's throughput ({target:,.0f} req/s "
            f"wanted, {res['rps']:,.0f} done): p50 {res['p50_ms']:.2f} ms, "
            f"p99 {res['p99_ms']:.2f} ms"
        )
    return paced


def bench(opts: Any) -> dict[str, Any]:
    wrk, run = ensure_wrk(), Path(opts.out).resolve() / "run"
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    env = {**os.environ, "GATEWAY_DB": str(run / "bench.db"), "GATEWAY_LOCAL_DIR": str(run)}
    servers: dict[str, tuple[Server, Path, str]] = {}
    postgres = None
    if opts.store == "postgresql" and "gateway" in opts.apps:
        # durable (not the tests' fast mode): each acknowledged check waits for the
        # server's WAL flush, as in production
        postgres = PostgresServer(Path(tempfile.mkdtemp(prefix="bench-pg-"))).start()
        env["GATEWAY_DB"] = postgres.create_database("bench")
        print(f"store: PostgreSQL {postgres.url} (synchronous_commit on, fsync on)")
    rounds: dict[str, list[Run]] = {app: [] for app in opts.apps}
    key, listed = "", ""
    batch: list[tuple[float, float]] = []
    paced: dict[str, Run] = {}
    try:
        envs = dict.fromkeys(opts.apps, env)
        if set(GATEWAYS) & set(opts.apps):
            key, listed = prepare_gateway(run, opts, env)
        for app in VARIANTS.keys() & set(opts.apps):
            envs[app] = variant_env(env, app)
        for app in opts.apps:
            server, codes = start(app, opts, run, envs[app], (key, listed))
            servers[app] = server, codes, key if app in GATEWAYS else ""  # the gateways' key
            print(f"{app}: {server.url} pid {server.proc.pid}; warm-up {opts.warmup:g} s")
            run_wrk(wrk, *servers[app], opts, opts.warmup)
        settle(servers)
        print(HEADER + "errors; then working on for")
        for _ in range(opts.rounds):
            for app in opts.apps:
                res = run_wrk(wrk, *servers[app], opts, opts.duration)
                settle(servers, res)
                rounds[app].append(res)
                extra = f"non-2xx {res['non_2xx']:.0f}, socket errors {res['socket_errors']:.0f}"
                extra += f"; {res['after_s']:.1f} s, {res['after_cpu_s']:.2f} s CPU"
                print(ROW.format(app, *(res[f] for f in STATS), res["rss_kb"] // 1024, extra))
                if app in GATEWAYS and res["non_2xx"]:
                    raise servers[app][0].failed(f"{res['non_2xx']:.0f} non-2xx responses")
        if "gateway" in opts.apps and opts.paced:
            paced = paced_runs(wrk, servers, rounds["gateway"], opts)
        if "gateway" in opts.apps and opts.batch_runs:
            some = servers["gateway"][1].read_text().split()[: opts.batch_size]
            batch = batch_ms(servers["gateway"][0], key, some, opts.batch_runs)
    finally:
        for server, *_ in servers.values():
            server.stop()
        if postgres is not None:
            postgres.stop()
            shutil.rmtree(postgres.directory, ignore_errors=True)
    result = summarise(opts, rounds, batch)
    for app, res in paced.items():
        result["paced" if app == "gateway" else f"paced_{app}"] = {
            k: round(v, 2) for k, v in res.items()
        }
    return result


def main(argv: list[str] | None = None) -> int:
    formatter = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    add = parser.add_argument
    add("--workers", type=int, default=1, help="granian workers of every server")
    add("--connections", type=int, default=32, help="wrk connections (one wrk thread)")
    add("--duration", type=float, default=10, help="seconds of each measured wrk run")
    add("--rounds", type=int, default=3, help="rounds, each running every app once in turn")
    add("--warmup", type=float, default=2, help="seconds of load before measuring a server")
    add("--subjects", type=int, default=100_000, help="population of the gateway's data")
    add("--hit-ratio", type=float, default=0.1, help="share of the population listed")
    add("--codes", type=int, default=10_000, help="codes the gateway is queried with, half hits")
    add("--seed", type=int, default=7, help="seed of the generated data")
    add(
        "--paced",
        type=float,
        default=0.5,
        help="pace the gateway at this share of its throughput for a latency run (0: skip)",
    )
    add("--batch-runs", type=int, default=20, help="timed batch checks after the rounds")
    add("--batch-size", type=int, default=1000, help="codes per batch check")
    add(
        "--store",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="the gateway's store: a SQLite file, or a PostgreSQL server started for the run",
    )
    subset = "comma-separated subset of " + ",".join(APPS)
    add("--apps", default=",".join(DEFAULT_APPS), help=subset)
    add(
        "--unsynced",
        action="store_true",
        help="also measure the gateway with GATEWAY_SYNC=NORMAL (no fsync: not durable)",
    )
    add("--start-timeout", type=float, default=120, help="seconds for a server to be ready")
    add("--out", default=str(REPO / "var" / "bench"), help="output directory")
    add(
        "--scale-sizes",
        type=int,
        nargs="+",
        default=list(bench_scale.SIZES),
        help="entries of the scale profile's stores, the first the reference",
    )
    add(
        "--scale-out",
        type=Path,
        default=REPO / "var" / "bench-scale",
        help="where the scale profile's stores are generated (once) and kept",
    )
    add("--no-scale", action="store_true", help="skip the scale profile")
    opts = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers on the way out
    wanted = opts.apps.split(",") + (["gateway-unsynced"] if opts.unsynced else [])
    opts.apps = [a for a in APPS if a in wanted]
    if VARIANTS.keys() & set(opts.apps) and opts.store != "sqlite":
        parser.error("the gateway's variants are for the SQLite store")
    path = Path(opts.out) / "result.json"
    try:
        result = bench(opts)
        show(result)
        path.write_text(json.dumps(result, indent=2, default=str) + "\n")
        if not opts.no_scale:
            sizes = " and ".join(f"{n:,}" for n in opts.scale_sizes)
            print(f"\nscale profile: {sizes} entries (--no-scale skips it)")
            result["scale"] = bench_scale.profile(scale_options(opts))
            path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    print(f"written to {path}")
    return 0


def scale_options(opts: Any) -> argparse.Namespace:
    """The scale profile's options: the bench's workers, rounds and load."""
    return argparse.Namespace(
        sizes=opts.scale_sizes,
        workers=opts.workers,
        rounds=opts.rounds,
        duration=opts.duration,
        connections=opts.connections,
        start_timeout=max(opts.start_timeout, 600.0),
        out=opts.scale_out,
    )


if __name__ == "__main__":
    raise SystemExit(main())

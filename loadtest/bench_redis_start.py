"""Cold start of a worker from Redis against the store (``make bench-redis``).

A store of ``--entries`` active entries is generated once (as by ``make bench-scale``,
kept under ``var/bench-scale/``) and a real ``redis-server`` is started on a free port.
A first gateway builds the snapshot from the store and puts it in Redis. Then, round
after round, a gateway with its snapshot file off is started and timed from process
start to ``/readyz`` 200, once without Redis (the snapshot built from the store) and
once with it (read from Redis, then the stream's tail); each reports where its snapshot
came from, and its RSS.

    python -m loadtest.bench_redis_start --entries 1000000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from loadtest.bench_scale import prepare, worker_memory_mb
from loadtest.harness import REPO, Server, fetch
from loadtest.redis_server import RedisServer


def start(
    name: str, db: Path, out: Path, redis_url: str, timeout: float
) -> tuple[float, str, float]:
    """Seconds to ready, where the snapshot came from, and the worker's RSS (MiB)."""
    env = {**os.environ, "GATEWAY_DB": str(db), "GATEWAY_SNAPSHOT_FILE": "off"}
    env.pop("GATEWAY_REDIS_URL", None)
    if redis_url:
        env["GATEWAY_REDIS_URL"] = redis_url
    started = time.monotonic()
    cmd = [sys.executable, "-m", "gateway", "serve", "--workers", "1"]
    server = Server(name, cmd, REPO, env, out)
    try:
        server.wait_ready("/readyz", timeout)
        seconds = time.monotonic() - started
        body = json.loads(fetch(server.url + "/readyz")[1])
        rss = max((rss for rss, _, _ in worker_memory_mb(server)), default=0.0)
        return seconds, str(body["snapshot_from"]), rss
    finally:
        server.stop()


def wait_shared(redis: RedisServer, timeout: float) -> int:
    """Until Redis holds a snapshot (uploaded in the background); its version."""
    client = redis.client()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            version = client.hget("{gateway}:snapshot", "version")
            if version is not None:
                return int(version)
            time.sleep(0.2)
    finally:
        client.close()
    raise SystemExit(f"no snapshot in Redis after {timeout:g} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "var" / "bench-scale")
    parser.add_argument("--start-timeout", type=float, default=600)
    opts = parser.parse_args(argv)
    opts.out.mkdir(parents=True, exist_ok=True)
    db, _, _ = prepare(opts.out, opts.entries)
    with tempfile.TemporaryDirectory() as scratch:
        redis = RedisServer(Path(scratch)).start()
        try:
            seconds, origin, _ = start("seed", db, opts.out, redis.url, opts.start_timeout)
            version = wait_shared(redis, opts.start_timeout)
            print(f"first start (built from the {origin}, shared in Redis): {seconds:.1f} s")
            info = redis.client().info("memory")
            print(f"Redis holds snapshot {version}: used memory {info['used_memory_human']}")
            times: dict[str, list[float]] = {"store": [], "redis": []}
            rss: dict[str, list[float]] = {"store": [], "redis": []}
            for round_no in range(1, opts.rounds + 1):
                for path, url in (("store", ""), ("redis", redis.url)):
                    took, origin, mib = start(path, db, opts.out, url, opts.start_timeout)
                    if origin != path:
                        raise SystemExit(f"{path} start took its snapshot from {origin}")
                    times[path].append(took)
                    rss[path].append(mib)
                    print(f"  round {round_no}: from the {path}: {took:.2f} s, RSS {mib:.0f} MiB")
        finally:
            redis.stop()
    store_s, redis_s = statistics.median(times["store"]), statistics.median(times["redis"])
    print(
        f"{opts.entries:,} entries, median of {opts.rounds}: cold start from the store "
        f"{store_s:.2f} s, from Redis {redis_s:.2f} s ({store_s / redis_s:.1f}x faster); "
        f"RSS {statistics.median(rss['store']):.0f} / {statistics.median(rss['redis']):.0f} MiB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

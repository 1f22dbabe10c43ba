"""Several gateway processes with Redis (issue 8): list changes travel on the Redis stream,
a Redis that dies, hangs or comes back empty never fails a check, and no change is lost.

The gateways share one SQLite store (the stand-in for the shared store of a multi-node
deployment) but, while Redis answers, read list changes from the stream only: the relay
polls the store every ``GATEWAY_POLL_INTERVAL`` (set to 10 s in the convergence test), so
convergence within a second can only come through the stream.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import msgspec
import pytest
import redis

from loadtest.datagen import make_uscc
from loadtest.redis_server import RedisCluster, RedisServer
from tests.fixtures import CLEAR, RESTRICTED, TODAY, Seeded, entry, run_gateway
from tests.server.conftest import Server

pytestmark = pytest.mark.slow


def new_codes(n: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    return [make_uscc(rnd, "110000") for _ in range(n)]


def ready(server: Server) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{server.url}/readyz", timeout=2).json()
    return body


def check(server: Server, seeded: Seeded, uscc: str) -> dict[str, Any]:
    answer = httpx.get(
        f"{server.url}/v1/check",
        params={"uscc": uscc, "matter": "bidding"},
        headers=seeded.auth(),
        timeout=5,
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def upsert(server: Server, seeded: Seeded, codes: list[str], tag: str) -> None:
    rows = [
        msgspec.to_builtins(
            entry(code, "court_defaulter", f"{tag}-{n}", listed_on=TODAY - timedelta(days=1))
        )
        for n, code in enumerate(codes)
    ]
    answer = httpx.post(
        f"{server.url}/v1/lists/entries", json=rows, headers=seeded.auth("lists"), timeout=10
    )
    assert answer.status_code == 200, answer.text


def until(condition: Callable[[], bool], seconds: float) -> float:
    """Seconds until ``condition`` holds; fails after ``seconds``."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if condition():
            return time.monotonic() - started
        time.sleep(0.01)
    raise AssertionError(f"not within {seconds} s")


def gateway(server_factory: type[Server], seeded: Seeded, redis: RedisServer, **env: str) -> Server:
    env = {"GATEWAY_REDIS_URL": redis.url, "GATEWAY_SNAPSHOT_FILE": "off", **env}
    return server_factory(seeded.path, **cast(dict[str, Any], env)).start()


def test_two_gateways_converge_within_a_second_of_an_import_through_either(
    seeded: Seeded, server_factory: type[Server], redis_server: RedisServer, tmp_path: Path
) -> None:
    slow_poll = {"GATEWAY_POLL_INTERVAL": "10"}
    a = gateway(server_factory, seeded, redis_server, **slow_poll)
    b = gateway(server_factory, seeded, redis_server, **slow_poll)
    assert ready(a)["changes_from"] == ready(b)["changes_from"] == "redis"
    first, second, third = new_codes(3, seed=81)

    for writer, reader, code in ((a, b, first), (b, a, second)):
        assert check(reader, seeded, code)["verdict"] == "clear"
        started = time.monotonic()
        upsert(writer, seeded, [code], tag=f"via-{writer.port}")
        took = until(lambda: check(reader, seeded, code)["verdict"] == "restricted", 5)  # noqa: B023
        assert took < 1.0, f"the other gateway saw the import after {took:.2f} s"
        assert time.monotonic() - started < 2.0

    # An import from the command line publishes to the stream too.
    source = tmp_path / "court.jsonl"
    source.write_text(
        msgspec.json.encode(
            msgspec.to_builtins(entry(third, "court_defaulter", "cli-1", listed_on=TODAY))
        ).decode()
        + "\n",
        encoding="utf-8",
    )
    started = time.monotonic()
    imported = run_gateway(seeded.path, "import", str(source), GATEWAY_REDIS_URL=redis_server.url)
    assert imported.returncode == 0, imported.stderr
    assert "changes published to the change stream" in imported.stderr
    took = until(lambda: all(check(s, seeded, third)["verdict"] == "restricted" for s in (a, b)), 5)
    assert time.monotonic() - started < 5.0
    assert took < 1.0


class Checker(threading.Thread):
    """Checks one subject after another until stopped; keeps every answer's status and
    ``degraded`` flag."""

    def __init__(self, server: Server, seeded: Seeded) -> None:
        super().__init__(daemon=True)
        self.server, self.seeded = server, seeded
        self.statuses: list[int] = []
        self.degraded: list[bool] = []
        self.slowest = 0.0
        self.errors: list[str] = []
        self._done = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.server.url, headers=self.seeded.auth()) as client:
            while not self._done.is_set():
                for code in (RESTRICTED, CLEAR):
                    started = time.monotonic()
                    try:
                        answer = client.get(
                            "/v1/check", params={"uscc": code, "matter": "bidding"}, timeout=5
                        )
                    except httpx.HTTPError as exc:
                        self.errors.append(repr(exc))
                        continue
                    self.slowest = max(self.slowest, time.monotonic() - started)
                    self.statuses.append(answer.status_code)
                    if answer.status_code == 200:
                        self.degraded.append(answer.json()["degraded"])

    def finish(self) -> None:
        self._done.set()
        self.join(timeout=10)


def every_worker(server: Server, workers: int, condition: Callable[[dict[str, Any]], bool]) -> bool:
    """Whether ``condition`` holds for the readyz of each of ``workers`` workers (new
    connections until each worker has answered)."""
    seen: dict[int, bool] = {}
    for _ in range(200):
        body = ready(server)
        seen[body["worker_pid"]] = condition(body)
        if len(seen) == workers:
            return all(seen.values())
    return False


def degraded_workers(server: Server) -> int:
    """Workers whose ``gateway_degraded`` gauge is 1 in the server's /metrics."""
    text = httpx.get(f"{server.url}/metrics", timeout=2).text
    return sum(
        1
        for line in text.splitlines()
        if line.startswith("gateway_degraded{") and float(line.rsplit(" ", 1)[1]) == 1
    )


def store_head(seeded: Seeded) -> int:
    async def last(store: Any) -> int:
        return int(await store.last_change_seq())

    return seeded.run(last)


def stream_head(redis: RedisServer) -> int:
    client = redis.client()
    try:
        value = client.get("{gateway}:head")
        return int(value) if value is not None else -1
    finally:
        client.close()


def test_redis_killed_while_checks_run_then_back_nothing_failed_nothing_lost(
    seeded: Seeded, server_factory: type[Server], tmp_path: Path
) -> None:
    redis = RedisServer(tmp_path, persist=True).start()
    try:
        server = server_factory(
            seeded.path, workers=2, GATEWAY_REDIS_URL=redis.url, GATEWAY_POLL_INTERVAL="0.1"
        ).start()
        assert until(lambda: every_worker(server, 2, lambda b: b["changes_from"] == "redis"), 10)
        checker = Checker(server, seeded)
        checker.start()
        time.sleep(0.5)
        down, back = new_codes(2, seed=82)

        redis.kill()
        until(lambda: every_worker(server, 2, lambda b: bool(b["degraded"])), 5)
        body = ready(server)
        assert body["status"] == "ready"
        assert body["changes_from"] == "store"
        assert "Redis unavailable" in body["degraded"][0]
        until(lambda: degraded_workers(server) == 2, 3)  # the gauge, flushed every second
        # A change made while Redis is down reaches every worker through the store.
        upsert(server, seeded, [down], tag="while-down")
        took = until(lambda: all(check(server, seeded, down)["verdict"] == "restricted"
                                 for _ in range(10)), 5)  # fmt: skip
        assert took < 1.0

        redis.start()  # the same port, its append-only file read back
        until(lambda: every_worker(server, 2, lambda b: b["changes_from"] == "redis"), 5)
        assert every_worker(server, 2, lambda b: not b["degraded"])
        until(lambda: degraded_workers(server) == 0, 3)
        upsert(server, seeded, [back], tag="after")
        took = until(lambda: all(check(server, seeded, back)["verdict"] == "restricted"
                                 for _ in range(10)), 5)  # fmt: skip
        assert took < 1.0
        checker.finish()

        assert checker.errors == [], checker.errors[:3]
        assert set(checker.statuses) == {200}
        assert True in checker.degraded, "answers during the outage are marked degraded"
        assert checker.degraded[-1] is False, "answers after recovery are not"
        # Nothing lost: the stream carries every change of the store, and every worker has it.
        until(lambda: stream_head(redis) == store_head(seeded), 5)
        last = store_head(seeded)
        assert every_worker(server, 2, lambda b: b["snapshot_version"] == last)
    finally:
        redis.stop()


def test_redis_restarted_empty_is_reseeded_and_a_new_gateway_starts_from_it(
    seeded: Seeded, server_factory: type[Server], redis_server: RedisServer
) -> None:
    server = gateway(server_factory, seeded, redis_server)
    down, back = new_codes(2, seed=83)
    redis_server.kill()
    until(lambda: bool(ready(server)["degraded"]), 5)
    upsert(server, seeded, [down], tag="while-down")
    until(lambda: check(server, seeded, down)["verdict"] == "restricted", 2)

    redis_server.start()  # empty: no stream, no head, no snapshot
    until(lambda: ready(server)["changes_from"] == "redis", 5)
    until(lambda: stream_head(redis_server) == store_head(seeded), 5)
    upsert(server, seeded, [back], tag="after")
    assert until(lambda: check(server, seeded, back)["verdict"] == "restricted", 5) < 1.0

    # A new gateway starts from the snapshot the re-seed put in Redis (its own snapshot
    # file is off) and from the stream, and answers every change made meanwhile.
    client = redis_server.client()
    until(lambda: client.exists("{gateway}:snapshot") == 1, 5)
    client.close()
    until(lambda: stream_head(redis_server) == store_head(seeded), 5)  # "back" published
    fresh = gateway(server_factory, seeded, redis_server)
    body = ready(fresh)
    assert body["snapshot_from"] == "redis"
    assert body["snapshot_version"] == store_head(seeded)
    for code in (down, back, RESTRICTED):
        assert check(fresh, seeded, code)["verdict"] == "restricted"
    assert check(fresh, seeded, CLEAR)["verdict"] == "clear"


def test_a_hung_redis_delays_no_check_and_marks_answers_degraded(
    seeded: Seeded, server_factory: type[Server], redis_server: RedisServer
) -> None:
    server = gateway(server_factory, seeded, redis_server, GATEWAY_POLL_INTERVAL="0.1")
    checker = Checker(server, seeded)
    checker.start()
    time.sleep(0.3)
    redis_server.pause()  # connections stay open; nothing answers: only timeouts tell
    try:
        until(lambda: bool(ready(server)["degraded"]), 5)
        code = new_codes(1, seed=84)[0]
        upsert(server, seeded, [code], tag="while-hung")  # its publication times out
        until(lambda: check(server, seeded, code)["verdict"] == "restricted", 2)
    finally:
        redis_server.resume()
    until(lambda: ready(server)["changes_from"] == "redis", 5)
    checker.finish()
    assert checker.errors == []
    assert set(checker.statuses) == {200}
    assert True in checker.degraded
    assert checker.degraded[-1] is False
    # Checks never wait on Redis: none took anywhere near Redis's timeouts.
    assert checker.slowest < 0.5, f"slowest check {checker.slowest:.3f} s"
    until(lambda: stream_head(redis_server) == store_head(seeded), 5)


def test_on_a_redis_cluster_gateways_converge_and_start_from_its_snapshot(
    seeded: Seeded, server_factory: type[Server], redis_cluster: RedisCluster
) -> None:
    """Keys designed for Redis Cluster, shown on one: the stream and its head share a
    slot (the compare-and-append script needs both), the snapshot's chunks spread."""
    env: dict[str, Any] = {
        "GATEWAY_REDIS_URL": redis_cluster.url,
        "GATEWAY_REDIS_CLUSTER": "true",
        "GATEWAY_SNAPSHOT_FILE": "off",
        "GATEWAY_POLL_INTERVAL": "10",
    }
    a = server_factory(seeded.path, **env).start()
    b = server_factory(seeded.path, **env).start()
    assert ready(a)["changes_from"] == ready(b)["changes_from"] == "redis"
    code = new_codes(1, seed=85)[0]
    upsert(a, seeded, [code], tag="cluster")
    assert until(lambda: check(b, seeded, code)["verdict"] == "restricted", 5) < 1.0
    client = redis.RedisCluster.from_url(redis_cluster.url)
    try:
        until(lambda: client.exists("{gateway}:snapshot") == 1, 5)
        assert int(client.get("{gateway}:head") or 0) == store_head(seeded)
    finally:
        client.close()
    fresh = server_factory(seeded.path, **env).start()
    body = ready(fresh)
    assert body["snapshot_from"] == "redis"
    assert check(fresh, seeded, code)["verdict"] == "restricted"


def test_a_gateway_starts_and_answers_while_redis_is_down_then_joins_it(
    seeded: Seeded, server_factory: type[Server], tmp_path: Path
) -> None:
    """Redis not there at start: the worker starts (its snapshot from the store), is ready,
    answers degraded and follows the store; when Redis comes, it seeds it and follows it."""
    redis = RedisServer(tmp_path)  # its port chosen, not started
    try:
        server = gateway(server_factory, seeded, redis, GATEWAY_POLL_INTERVAL="0.1")
        body = ready(server)
        assert body["status"] == "ready"
        assert body["changes_from"] == "store"
        assert body["snapshot_from"] == "store"
        assert check(server, seeded, RESTRICTED)["degraded"] is True
        code = new_codes(1, seed=86)[0]
        upsert(server, seeded, [code], tag="before-redis")
        until(lambda: check(server, seeded, code)["verdict"] == "restricted", 2)

        redis.start()
        until(lambda: ready(server)["changes_from"] == "redis", 5)
        assert check(server, seeded, CLEAR)["degraded"] is False
        until(lambda: stream_head(redis) == store_head(seeded), 5)
    finally:
        redis.stop()

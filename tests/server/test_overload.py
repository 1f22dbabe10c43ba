"""When checks cannot be recorded in time, callers get 503 with Retry-After, never a 200
for an unrecorded check; once the store accepts writes again, the waiting checks answer
(inserted before their frame) or are inserted (framed, held behind: gateway.storebehind)."""

from __future__ import annotations

import asyncio
import sqlite3

import httpx
import pytest

from tests.fixtures import CLEAR, Seeded
from tests.server.conftest import Server


@pytest.mark.slow
def test_503_with_retry_after_when_the_recorder_queue_is_full(
    seeded: Seeded, server_factory: type[Server]
) -> None:
    server = server_factory(
        seeded.path, GATEWAY_RECORDER_QUEUE="2", GATEWAY_STORE_DELAY_MS="0"
    ).start()
    blocker = sqlite3.connect(seeded.path, isolation_level=None)

    async def scenario() -> list[httpx.Response]:
        async with httpx.AsyncClient(
            base_url=server.url, headers=seeded.auth(), timeout=20
        ) as client:
            params = {"uscc": CLEAR, "matter": "bidding"}
            blocker.execute("BEGIN IMMEDIATE")  # the store refuses writes for now
            try:
                first = asyncio.create_task(client.get("/v1/check", params=params))
                await asyncio.sleep(0.3)  # its batch is now waiting for the lock
                queued = [
                    asyncio.create_task(client.get("/v1/check", params=params)) for _ in range(2)
                ]
                await asyncio.sleep(0.3)
                refused = await client.get("/v1/check", params=params)
                assert not first.done()
                assert not any(q.done() for q in queued)
            finally:
                blocker.execute("ROLLBACK")
            return [refused, await first, *(await asyncio.gather(*queued))]

    try:
        refused, *answered = asyncio.run(scenario())
    finally:
        blocker.close()
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["type"] == "/problems/overloaded"
    assert [r.status_code for r in answered] == [200, 200, 200]
    for response in answered:
        stored = seeded.run(lambda store, r=response: store.get_check(r.json()["check_id"]))
        assert stored is not None


@pytest.mark.slow
def test_checks_held_behind_a_locked_store_count_until_503(
    seeded: Seeded, server_factory: type[Server]
) -> None:
    """With the store behind its frames (the default), a store that refuses writes does not
    hold answers back: each check is durable in its frame and answered, and held until the
    store takes it; held checks count against the queue, so that past it callers get 503;
    once the lock is let go, every check answered is in the store."""
    server = server_factory(seeded.path, GATEWAY_RECORDER_QUEUE="2").start()
    blocker = sqlite3.connect(seeded.path, isolation_level=None)
    params = {"uscc": CLEAR, "matter": "bidding"}
    with httpx.Client(base_url=server.url, headers=seeded.auth(), timeout=20) as client:
        blocker.execute("BEGIN IMMEDIATE")  # the store refuses writes for now
        try:
            answered = [client.get("/v1/check", params=params) for _ in range(2)]
            refused = client.get("/v1/check", params=params)
            ids = [r.json()["check_id"] for r in answered]
            assert [r.status_code for r in answered] == [200, 200]
            assert seeded.run(lambda store: store.get_check(ids[0])) is None  # held
            # the worker's own reads see what it holds
            assert client.get(f"/v1/checks/{ids[0]}").status_code == 200
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["type"] == "/problems/overloaded"
    for check_id in ids:
        assert seeded.stored_check(check_id) is not None

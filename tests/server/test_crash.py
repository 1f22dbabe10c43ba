"""Durable before acknowledged: SIGKILL mid-load loses no check that got a 200 and no
feedback that got a 201; after a restart, feedback can still be sent to them."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.fixtures import CLEAR, INCENTIVE, RESTRICTED, Seeded
from tests.server.conftest import Server

FEEDBACK = {"measures": [{"code": "P-BID-01", "executed": True}], "outcome": "不予受理"}


async def _load(
    server: Server, seeded: Seeded, checks: list[str], feedback: list[str], kill_after: float
) -> None:
    async with httpx.AsyncClient(base_url=server.url, headers=seeded.auth(), timeout=5) as client:

        async def caller(n: int) -> None:
            codes = [RESTRICTED, CLEAR, INCENTIVE]
            i = n
            while True:
                i += 1
                try:
                    response = await client.get(
                        "/v1/check",
                        params={
                            "uscc": codes[i % 3],
                            "matter": "bidding",
                            "case_ref": f"crash-{n}-{i}",
                        },
                    )
                    if response.status_code != 200:
                        continue
                    body = response.json()
                    checks.append(body["check_id"])
                    if body["feedback_required"] and i % 2:
                        posted = await client.post(
                            f"/v1/checks/{body['check_id']}/feedback", json=FEEDBACK
                        )
                        if posted.status_code == 201:
                            feedback.append(body["check_id"])
                except httpx.HTTPError:
                    return  # the server is gone

        callers = [asyncio.create_task(caller(n)) for n in range(16)]
        await asyncio.sleep(kill_after)
        await asyncio.to_thread(server.kill)
        await asyncio.wait_for(asyncio.gather(*callers), timeout=30)


@pytest.mark.slow
def test_sigkill_loses_no_acknowledged_check_or_feedback(
    seeded: Seeded, server_factory: type[Server]
) -> None:
    checks: list[str] = []
    feedback: list[str] = []
    for kill_after in (1.5, 2.0, 2.5):  # three crashes, at different moments of the load
        server = server_factory(seeded.path).start()
        asyncio.run(_load(server, seeded, checks, feedback, kill_after=kill_after))
    assert len(checks) > 150, "the load should have produced acknowledged checks"
    assert feedback, "the load should have produced acknowledged feedback"

    restarted = server_factory(seeded.path).start()

    async def verify(store: Any) -> tuple[list[str], list[str], str | None]:
        missing_checks = [c for c in checks if await store.get_check(c) is None]
        missing_feedback = [c for c in feedback if await store.get_feedback(c) is None]
        pending = None
        for c in reversed(checks):
            stored = await store.get_check(c)
            if stored.verdict == "restricted" and await store.get_feedback(c) is None:
                pending = c
                break
        return missing_checks, missing_feedback, pending

    missing_checks, missing_feedback, pending = seeded.run(verify)
    assert missing_checks == []
    assert missing_feedback == []
    assert pending is not None
    response = httpx.post(
        f"{restarted.url}/v1/checks/{pending}/feedback",
        json=FEEDBACK,
        headers=seeded.auth(),
        timeout=5,
    )
    assert response.status_code == 201, response.text
    again = httpx.get(f"{restarted.url}/v1/checks/{checks[0]}", headers=seeded.auth(), timeout=5)
    assert again.status_code == 200

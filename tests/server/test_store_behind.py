"""Two workers, each holding the checks it framed for a while before inserting them
(``GATEWAY_STORE_DELAY_MS``, here 300 ms): feedback and reads sent on a new connection
right after the check, to whichever worker the kernel gives it, find the check at once —
the worker that holds it sees it, the other waits for its insert."""

from __future__ import annotations

import httpx

from tests.fixtures import RESTRICTED, Seeded
from tests.server.conftest import Server
from tests.server.test_metrics_workers import settled


def test_feedback_right_after_a_check_finds_it_on_either_worker(
    server_factory: type[Server], seeded: Seeded
) -> None:
    server = server_factory(seeded.path, workers=2, GATEWAY_STORE_DELAY_MS="300").start()
    headers = {**seeded.auth("approval"), "Connection": "close"}  # a new connection each
    pairs = 16
    for _ in range(pairs):
        made = httpx.get(
            f"{server.url}/v1/check",
            params={"uscc": RESTRICTED, "matter": "bidding"},
            headers=headers,
            timeout=5,
        )
        assert made.status_code == 200, made.text
        body = made.json()
        check_id = body["check_id"]
        seen = httpx.get(f"{server.url}/v1/checks/{check_id}", headers=headers, timeout=5)
        assert seen.status_code == 200, seen.text
        assert seen.json()["check_id"] == check_id
        reported = [
            {"code": m["code"], "executed": True} for m in body["measures"] if m["state"] == "apply"
        ]
        given = httpx.post(
            f"{server.url}/v1/checks/{check_id}/feedback",
            json={"measures": reported, "outcome": "不予受理"},
            headers=headers,
            timeout=5,
        )
        assert given.status_code == 201, given.text
    checks, pids = settled(server, pairs, 2)
    assert checks == pairs
    assert len(pids) == 2  # both workers made checks: some reads went to the other one

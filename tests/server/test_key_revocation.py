"""A revoked key fails on every worker of a running server within a second."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.fixtures import CLEAR, Seeded
from tests.server.conftest import Server

pytestmark = pytest.mark.slow


def status(server: Server, key: str) -> int:
    # A new connection each time: the kernel hands it to either worker.
    response = httpx.get(
        f"{server.url}/v1/check",
        params={"uscc": CLEAR, "matter": "bidding"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=5,
    )
    return response.status_code


def test_a_revoked_key_fails_on_every_worker_within_a_second(
    server_factory: type[Server], seeded: Seeded
) -> None:
    caller, key = seeded.run(lambda store: store.create_key("审批系统", "政务中心", ["check"]))
    server = server_factory(seeded.path, workers=2).start()
    assert all(status(server, key) == 200 for _ in range(10))

    seeded.run(lambda store: store.revoke_key(caller.key_id, "test"))
    revoked_at = time.monotonic()
    # From the first moment every request is refused, 20 in a row (both workers).
    streak, refused_from = 0, None
    while streak < 20 and time.monotonic() - revoked_at < 5:
        if status(server, key) == 401:
            refused_from = refused_from if streak else time.monotonic()
            streak += 1
        else:
            streak = 0
    assert streak == 20
    assert refused_from is not None
    assert refused_from - revoked_at < 1.0
    assert status(server, seeded.keys["approval"]) == 200  # other keys are untouched

"""The load-test data generator fills a running gateway through its Lists API."""

from __future__ import annotations

import httpx
import pytest

from loadtest.datagen import generate, load_into
from tests.fixtures import Seeded
from tests.server.conftest import Server


@pytest.mark.slow
def test_a_generated_population_loads_through_the_api(
    seeded: Seeded, server_factory: type[Server]
) -> None:
    server = server_factory(seeded.path).start()
    rows, hits, clear = generate(2_000, 0.25, seed=3)
    totals = load_into(server.url, seeded.keys["lists"], rows, chunk=300)
    assert totals == {"inserted": len(rows), "updated": 0, "unchanged": 0}
    again = load_into(server.url, seeded.keys["lists"], rows, chunk=1_000)
    assert again == {"inserted": 0, "updated": 0, "unchanged": len(rows)}
    with httpx.Client(base_url=server.url, headers=seeded.auth(), timeout=5) as client:
        listed = client.get("/v1/check", params={"uscc": hits[0], "matter": "bidding"}).json()
        free = client.get("/v1/check", params={"uscc": clear[0], "matter": "bidding"}).json()
    assert listed["hits"][0]["list_type"] == rows[0]["list_type"]
    assert free["verdict"] == "clear"

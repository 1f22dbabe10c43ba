"""/metrics of a server with two workers: whichever worker answers the scrape, the counts
are every worker's, each counted once; a killed worker's gauges go, its counts stay."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures import CLEAR, RESTRICTED, Seeded
from tests.server.conftest import Server

pytestmark = pytest.mark.slow


def scrape(server: Server) -> tuple[float, set[str]]:
    """Checks counted (all matters and verdicts) and the pids of the live workers."""
    text = httpx.get(f"{server.url}/metrics", timeout=5).text
    checks, pids = 0.0, set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "gateway_checks_total":
                checks += sample.value
            if sample.name == "gateway_snapshot_version":
                pids.add(sample.labels["pid"])
    return checks, pids


def settled(server: Server, expected: float, pids: int) -> tuple[float, set[str]]:
    """Scrape until the counts reach ``expected`` with ``pids`` workers (≤ 3 s)."""
    deadline = time.monotonic() + 3
    found = scrape(server)
    while time.monotonic() < deadline and (found[0] != expected or len(found[1]) != pids):
        time.sleep(0.2)
        found = scrape(server)
    return found


def test_two_workers_count_every_check_once(server_factory: type[Server], seeded: Seeded) -> None:
    server = server_factory(seeded.path, workers=2).start()
    sent = 0
    for n in range(60):  # a new connection each: the kernel spreads them over both workers
        response = httpx.get(
            f"{server.url}/v1/check",
            params={"uscc": RESTRICTED if n % 2 else CLEAR, "matter": "bidding"},
            headers=seeded.auth(),
            timeout=5,
        )
        assert response.status_code == 200
        sent += 1
    checks, pids = settled(server, sent, 2)
    assert checks == sent
    assert len(pids) == 2
    for _ in range(10):  # any worker answering the scrape says the same
        assert scrape(server) == (checks, pids)

    victim = int(sorted(pids)[0])
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and str(victim) in scrape(server)[1]:
        time.sleep(0.2)
    checks_after, pids_after = scrape(server)
    assert str(victim) not in pids_after  # its gauges went with it
    assert checks_after == sent  # its counts stay in the total
    # The server started a worker in its place (granian respawns failed workers).
    checks_later, pids_later = settled(server, sent, 2)
    assert len(pids_later) == 2
    assert str(victim) not in pids_later
    assert checks_later == sent

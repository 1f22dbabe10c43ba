"""Good and bad catalog reloads under load, on a server with two workers: no check fails,
a good catalog reaches both workers, a bad one is refused and changes nothing."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.fixtures import CLEAR, RESTRICTED, Seeded
from tests.server.conftest import Server


def versions(server: Server, deadline: float) -> dict[int, str]:
    seen: dict[int, str] = {}
    while len(seen) < 2 and time.monotonic() < deadline:
        body = httpx.get(f"{server.url}/readyz", timeout=2).json()
        seen[body["worker_pid"]] = body["catalog_version"]
    return seen


@pytest.mark.slow
def test_reloads_under_load(
    seeded: Seeded, server_factory: type[Server], catalog_dir: Path
) -> None:
    server = server_factory(seeded.path, workers=2, GATEWAY_CATALOG=str(catalog_dir)).start()
    before = set(versions(server, time.monotonic() + 20).values())
    assert len(before) == 1
    punishments = catalog_dir / "measures/punishment.toml"
    original = punishments.read_text(encoding="utf-8")

    async def scenario() -> tuple[list[int], list[httpx.Response]]:
        statuses: list[int] = []
        stop = asyncio.Event()
        async with httpx.AsyncClient(
            base_url=server.url, headers=seeded.auth(), timeout=10
        ) as client:

            async def load(n: int) -> None:
                while not stop.is_set():
                    response = await client.get(
                        "/v1/check",
                        params={"uscc": (RESTRICTED, CLEAR)[n % 2], "matter": "bidding"},
                    )
                    statuses.append(response.status_code)

            callers = [asyncio.create_task(load(n)) for n in range(8)]
            await asyncio.sleep(0.5)
            admin = {"Authorization": f"Bearer {seeded.keys['admin']}"}
            punishments.write_text(
                original.replace(
                    'list_types = ["court_defaulter"]', 'list_types = ["nonexistent"]', 1
                ),
                encoding="utf-8",
            )
            bad = await client.post("/v1/admin/catalog/reload", headers=admin)
            await asyncio.sleep(0.5)
            punishments.write_text(
                original.replace(
                    'name = "限制参与依法必须招标项目的投标"', 'name = "取消投标资格"', 1
                ),
                encoding="utf-8",
            )
            good = await client.post("/v1/admin/catalog/reload", headers=admin)
            await asyncio.sleep(1.0)
            stop.set()
            await asyncio.gather(*callers)
        return statuses, [bad, good]

    statuses, (bad, good) = asyncio.run(scenario())
    assert bad.status_code == 422
    assert good.status_code == 200, good.text
    assert len(statuses) > 50
    assert set(statuses) == {200}, "no check failed during the reloads"
    after = versions(server, time.monotonic() + 20)
    assert len(after) == 2
    assert set(after.values()) == {good.json()["version"]}
    assert good.json()["previous"] in before
    body = httpx.get(
        f"{server.url}/v1/check",
        params={"uscc": RESTRICTED, "matter": "bidding"},
        headers=seeded.auth(),
        timeout=5,
    ).json()
    assert body["measures"][0]["name"] == "取消投标资格"


@pytest.mark.slow
def test_sighup_reloads_every_worker_and_refuses_a_bad_catalog(
    seeded: Seeded, server_factory: type[Server], catalog_dir: Path
) -> None:
    server = server_factory(seeded.path, workers=2, GATEWAY_CATALOG=str(catalog_dir)).start()
    assert server.process is not None
    (before,) = set(versions(server, time.monotonic() + 20).values())
    punishments = catalog_dir / "measures/punishment.toml"
    original = punishments.read_text(encoding="utf-8")
    punishments.write_text(
        original.replace('name = "限制参与依法必须招标项目的投标"', 'name = "取消投标资格"', 1),
        encoding="utf-8",
    )
    server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while True:
        seen = versions(server, time.monotonic() + 5)
        if len(seen) == 2 and before not in seen.values():
            break
        assert time.monotonic() < deadline, f"workers still on {seen}"
        time.sleep(0.1)
    (after,) = set(seen.values())
    punishments.write_text(
        original.replace('list_types = ["court_defaulter"]', 'list_types = ["nonexistent"]', 1),
        encoding="utf-8",
    )
    server.process.send_signal(signal.SIGHUP)
    time.sleep(1.5)
    assert set(versions(server, time.monotonic() + 5).values()) == {after}
    assert "catalog refused" in server.log.read_text(encoding="utf-8")
    assert httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200

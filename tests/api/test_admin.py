"""Catalog hot reload (POST /v1/admin/catalog/reload) and the expiry sweep."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from gateway.app import create_app
from gateway.settings import Settings
from gateway.store import Store
from tests.fixtures import CLEAR, RESTRICTED, TODAY, Seeded, entry

Client = TestClient[Any]


@pytest.fixture
def admin_client(seeded: Seeded, catalog_dir: Path) -> Iterator[Client]:
    app = create_app(
        Settings(
            db=str(seeded.path), catalog=str(catalog_dir), poll_interval=0.05, expiry_interval=0.1
        )
    )
    with TestClient(app) as client:
        yield client


def bid_measure_name(client: Client, seeded: Seeded) -> tuple[str, str]:
    body = client.get(
        "/v1/check", params={"uscc": RESTRICTED, "matter": "bidding"}, headers=seeded.auth()
    ).json()
    return body["catalog_version"], body["measures"][0]["name"]


def test_a_good_catalog_is_put_in_force(
    admin_client: Client, seeded: Seeded, catalog_dir: Path
) -> None:
    before, name = bid_measure_name(admin_client, seeded)
    assert name == "限制参与依法必须招标项目的投标"
    path = catalog_dir / "measures/punishment.toml"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            'name = "限制参与依法必须招标项目的投标"', 'name = "取消依法必须招标项目的投标资格"', 1
        ),
        encoding="utf-8",
    )
    response = admin_client.post("/v1/admin/catalog/reload", headers=seeded.auth("admin"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["previous"] == before
    assert body["version"] != before
    assert bid_measure_name(admin_client, seeded) == (
        body["version"],
        "取消依法必须招标项目的投标资格",
    )
    listed = admin_client.get("/v1/catalog", headers=seeded.auth()).json()
    assert listed["version"] == body["version"]


def test_a_bad_catalog_is_refused_and_the_old_one_stays(
    admin_client: Client, seeded: Seeded, catalog_dir: Path
) -> None:
    before = bid_measure_name(admin_client, seeded)
    path = catalog_dir / "measures/punishment.toml"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            'list_types = ["court_defaulter"]', 'list_types = ["court_defaulters"]', 1
        ),
        encoding="utf-8",
    )
    response = admin_client.post("/v1/admin/catalog/reload", headers=seeded.auth("admin"))
    assert response.status_code == 422
    body = response.json()
    assert body["type"] == "/problems/catalog-refused"
    assert body["errors"] == [
        {
            "field": "measures/punishment.toml: measure #1 (P-BID-01) rule #2",
            "message": "unknown list type 'court_defaulters'",
        }
    ]
    assert bid_measure_name(admin_client, seeded) == before


def test_reload_needs_admin(admin_client: Client, seeded: Seeded) -> None:
    assert admin_client.post("/v1/admin/catalog/reload").status_code == 401
    assert (
        admin_client.post("/v1/admin/catalog/reload", headers=seeded.auth("lists")).status_code
        == 403
    )


def test_the_sweep_marks_entries_past_their_end_as_expired(
    admin_client: Client, seeded: Seeded
) -> None:
    async def add(store: Store) -> str:
        result = await store.upsert_entries(
            [
                entry(
                    CLEAR,
                    "court_defaulter",
                    "old-1",
                    listed_on=TODAY - timedelta(days=800),
                    expires_on=TODAY - timedelta(days=1),
                )
            ],
            "test",
        )
        return result.entry_ids[0]

    entry_id = seeded.run(add)
    deadline = time.monotonic() + 3
    while (found := seeded.run(lambda store: store.get_entry(entry_id))).status != "expired":
        assert time.monotonic() < deadline, "the sweep did not run"
        time.sleep(0.05)
    history = seeded.run(lambda store: store.entry_history(entry_id))
    assert [(h.status, h.actor) for h in history][-1] == ("expired", "expiry sweep")
    body = admin_client.get(
        "/v1/check", params={"uscc": CLEAR, "matter": "bidding"}, headers=seeded.auth()
    ).json()
    assert body["verdict"] == "clear"
    assert found.expires_on == TODAY - timedelta(days=1)

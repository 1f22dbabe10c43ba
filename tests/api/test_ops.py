"""GET /v1/catalog, /healthz, /readyz, /schema/openapi.json."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from tests.fixtures import Seeded

Client = TestClient[Any]


def test_catalog_needs_any_valid_key(client: Client, seeded: Seeded) -> None:
    assert client.get("/v1/catalog").status_code == 401
    body = client.get("/v1/catalog", headers=seeded.auth("lists")).json()
    assert body["version"].startswith("2026.11.0+")
    assert len(body["list_types"]) == 14
    assert len(body["matter_types"]) == 8
    assert len(body["measures"]) >= 30
    bid = next(m for m in body["measures"] if m["code"] == "P-BID-01")
    assert bid["kind"] == "punishment"
    assert any("court_defaulter" in r["list_types"] for r in bid["rules"])


def test_health_and_readiness(client: Client, seeded: Seeded) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "ready"
    assert body["reasons"] == []
    assert body["subjects"] == 4  # three listed subjects (one repaired drops out) + a grade
    assert body["entries"] == 3


def test_openapi_documents_every_endpoint(client: Client) -> None:
    schema = client.get("/schema/openapi.json").json()
    paths = schema["paths"]
    assert {"get", "post"} <= set(paths["/v1/check"])
    assert "post" in paths["/v1/check/batch"]
    assert "post" in paths["/v1/checks/{check_id}/feedback"]
    assert "get" in paths["/v1/checks/{check_id}"]
    for path in ("/v1/catalog", "/healthz", "/readyz"):
        assert path in paths
    get_check = paths["/v1/check"]["get"]
    assert {p["name"] for p in get_check["parameters"]} >= {"uscc", "matter"}
    assert "422" in get_check["responses"]
    assert "CheckResponse" in schema["components"]["schemas"]

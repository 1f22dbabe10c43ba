"""List changes in the audit log: each status change of an entry, each upsert and grade
write, with who made it, before and after."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from tests.fixtures import INCENTIVE, Seeded

Client = TestClient[Any]
ROW = {
    "uscc": "91310000631696382C",
    "list_type": "tax_grade_a",
    "listed_on": "2026-11-01",
    "source": "audit-test",
    "source_id": "a1",
}


def audit(client: Client, seeded: Seeded, **params: str) -> list[dict[str, Any]]:
    response = client.get("/v1/admin/audit", params=params, headers=seeded.auth("admin"))
    assert response.status_code == 200, response.text
    lines: list[dict[str, Any]] = response.json()["lines"]
    return lines


def test_list_changes_through_the_api_are_audited(client: Client, seeded: Seeded) -> None:
    lists = seeded.auth("lists")
    entry_id = seeded.entry_ids["restricted"]
    before = {line["id"] for line in audit(client, seeded)}

    assert (
        client.post(
            f"/v1/entries/{entry_id}/objection", json={"opened_on": "2026-11-20"}, headers=lists
        ).status_code
        == 200
    )
    assert (
        client.post(
            f"/v1/entries/{entry_id}/objection/resolve", json={"upheld": False}, headers=lists
        ).status_code
        == 200
    )
    assert (
        client.put(
            f"/v1/subjects/{INCENTIVE}/grade", json={"value": "excellent"}, headers=lists
        ).status_code
        == 200
    )
    upsert = client.post(
        "/v1/lists/entries",
        json=[ROW],
        headers=lists,
    )
    assert upsert.status_code == 200, upsert.text

    lines = [line for line in audit(client, seeded) if line["id"] not in before]
    assert [line["action"] for line in lines] == [
        "entry.objection_pending", "entry.active", "grades.put", "entries.upsert",
    ]  # fmt: skip
    objection, resolution, grade, entries = lines
    assert objection["target"] == entry_id
    assert objection["before"]["status"] == "active"
    assert objection["after"]["status"] == "objection_pending"
    assert objection["after"]["opened_on"] == "2026-11-20"
    assert resolution["before"]["status"] == "objection_pending"
    assert all("lists system" in line["actor"] for line in lines)
    assert grade["target"] == INCENTIVE
    assert grade["after"]["grade"]["value"] == "excellent"
    assert entries["after"] == {"inserted": 1, "updated": 0, "unchanged": 0}

    # Upserting the same row again changes nothing and writes no line.
    again = client.post(
        "/v1/lists/entries",
        json=[ROW],
        headers=lists,
    )
    assert again.json()["unchanged"] == 1
    assert len([line for line in audit(client, seeded) if line["id"] not in before]) == 4

"""The Lists API: bulk upsert, the entry lifecycle as checks see it, grades, the subject."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from litestar.testing import TestClient

from tests.fixtures import CLEAR, INCENTIVE, RESTRICTED, SUSPENDED, Seeded

Client = TestClient[Any]
ROW = {
    "uscc": CLEAR,
    "subject_name": "某某劳务有限公司",
    "list_type": "wage_arrears",
    "authority": "杭州市人力资源和社会保障局",
    "reason": "拖欠农民工工资",
    "basis": "《保障农民工工资支付条例》第四十八条",
    "document_no": "杭人社欠〔2026〕1号",
    "listed_on": "2026-06-01",
    "expires_on": "2029-06-01",
    "source": "hz-hrss",
    "source_id": "W-1",
}


def check_becomes(
    client: Client, seeded: Seeded, uscc: str, matter: str, done: Callable[[Any], bool]
) -> Any:
    """Poll checks until the change reaches the snapshot (API.md: within 1 second)."""
    deadline = time.monotonic() + 2
    while True:
        body = client.get(
            "/v1/check", params={"uscc": uscc, "matter": matter}, headers=seeded.auth()
        ).json()
        if done(body) or time.monotonic() > deadline:
            assert done(body), body
            return body
        time.sleep(0.05)


def verdict_becomes(client: Client, seeded: Seeded, uscc: str, matter: str, want: str) -> Any:
    return check_becomes(client, seeded, uscc, matter, lambda body: body["verdict"] == want)


def test_upsert_is_idempotent_and_reaches_checks(client: Client, seeded: Seeded) -> None:
    response = client.post("/v1/lists/entries", json=[ROW], headers=seeded.auth("lists"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["inserted"], body["updated"], body["unchanged"], body["rejected"]) == (1, 0, 0, [])
    verdict_becomes(client, seeded, CLEAR, "bidding", "restricted")
    again = client.post("/v1/lists/entries", json=[ROW], headers=seeded.auth("lists")).json()
    assert (again["inserted"], again["updated"], again["unchanged"]) == (0, 0, 1)
    changed = client.post(
        "/v1/lists/entries",
        json=[{**ROW, "authority": "浙江省人社厅"}],
        headers=seeded.auth("lists"),
    ).json()
    assert changed["updated"] == 1
    subject = client.get(f"/v1/subjects/{CLEAR}", headers=seeded.auth("lists")).json()
    [entry] = subject["entries"]
    assert entry["authority"] == "浙江省人社厅"
    assert [h["status"] for h in entry["history"]] == ["active", "active"]
    assert all("lists system" in h["actor"] for h in entry["history"])


def test_ndjson_body(client: Client, seeded: Seeded) -> None:
    rows = [{**ROW, "source_id": f"W-{n}"} for n in range(3)]
    body = "\n".join(json.dumps(r, ensure_ascii=False) for r in rows).encode()
    response = client.post(
        "/v1/lists/entries",
        content=body,
        headers={**seeded.auth("lists"), "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["inserted"] == 3


def test_a_rejected_row_applies_nothing_unless_partial(client: Client, seeded: Seeded) -> None:
    rows = [
        ROW,
        {**ROW, "source_id": "W-2", "uscc": "91110000600037341X"},
        {**ROW, "source_id": "W-3", "list_type": "blacklist"},
    ]
    response = client.post("/v1/lists/entries", json=rows, headers=seeded.auth("lists"))
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert [(r["row"], r["field"]) for r in body["rejected"]] == [(2, "uscc"), (3, "list_type")]
    assert "rule: check_digit" in body["rejected"][0]["message"]
    assert body["inserted"] == 0
    subject = client.get(f"/v1/subjects/{CLEAR}", headers=seeded.auth("lists")).json()
    assert subject["entries"] == []
    partial = client.post(
        "/v1/lists/entries?allow_partial=true", json=rows, headers=seeded.auth("lists")
    )
    assert partial.status_code == 200
    assert partial.json()["inserted"] == 1
    assert len(partial.json()["rejected"]) == 2


def test_upsert_errors(client: Client, seeded: Seeded) -> None:
    assert client.post("/v1/lists/entries", json=[ROW]).status_code == 401
    assert client.post("/v1/lists/entries", json=[ROW], headers=seeded.auth()).status_code == 403
    assert (
        client.post(
            "/v1/lists/entries",
            content=b"x",
            headers={**seeded.auth("lists"), "Content-Type": "text/csv"},
        ).status_code
        == 415
    )
    assert (
        client.post(
            "/v1/lists/entries",
            content=b"[{",
            headers={**seeded.auth("lists"), "Content-Type": "application/json"},
        ).status_code
        == 400
    )


def test_objection_suspends_then_not_upheld_applies_again(client: Client, seeded: Seeded) -> None:
    entry_id = seeded.entry_ids["restricted"]
    opened = client.post(
        f"/v1/entries/{entry_id}/objection",
        headers=seeded.auth("lists"),
        json={"opened_on": "2026-11-20", "note": "企业提出异议"},
    )
    assert opened.status_code == 200, opened.text
    assert opened.json()["status"] == "objection_pending"
    body = verdict_becomes(client, seeded, RESTRICTED, "bidding", "attention")
    assert body["measures"][0]["state"] == "suspended"
    resolved = client.post(
        f"/v1/entries/{entry_id}/objection/resolve",
        headers=seeded.auth("lists"),
        json={"upheld": False, "note": "维持"},
    )
    assert resolved.json()["status"] == "active"
    verdict_becomes(client, seeded, RESTRICTED, "bidding", "restricted")
    history = [h["status"] for h in resolved.json()["history"]]
    assert history == ["active", "objection_pending", "active"]


def test_objection_upheld_revokes(client: Client, seeded: Seeded) -> None:
    entry_id = seeded.entry_ids["suspended"]
    resolved = client.post(
        f"/v1/entries/{entry_id}/objection/resolve",
        headers=seeded.auth("lists"),
        json={"upheld": True, "note": "认定有误"},
    )
    assert resolved.json()["status"] == "revoked"
    verdict_becomes(client, seeded, SUSPENDED, "procurement", "clear")


def test_repair_and_revoke_end_measures(client: Client, seeded: Seeded) -> None:
    entry_id = seeded.entry_ids["restricted"]
    repaired = client.post(
        f"/v1/entries/{entry_id}/repair",
        headers=seeded.auth("lists"),
        json={"repaired_on": "2026-11-21", "decision_no": "(2026)修3号"},
    )
    assert repaired.json()["status"] == "repaired"
    verdict_becomes(client, seeded, RESTRICTED, "bidding", "clear")
    again = client.post(
        f"/v1/entries/{entry_id}/revoke", headers=seeded.auth("lists"), json={"note": "重复"}
    )
    assert again.status_code == 409
    assert again.json()["errors"][0]["message"] == "current status is 'repaired'"
    incentive_id = seeded.entry_ids["incentive"]
    revoked = client.post(
        f"/v1/entries/{incentive_id}/revoke",
        headers=seeded.auth("lists"),
        json={"note": "认定错误"},
    )
    assert revoked.json()["status"] == "revoked"
    body = check_becomes(client, seeded, INCENTIVE, "licensing", lambda b: b["hits"] == [])
    assert body["verdict"] == "incentive"
    assert [m["triggered_by"] for m in body["measures"]] == [["grade:good"]]


def test_lifecycle_errors(client: Client, seeded: Seeded) -> None:
    assert (
        client.post(
            "/v1/entries/nope/repair",
            headers=seeded.auth("lists"),
            json={"repaired_on": "2026-11-21", "decision_no": "x"},
        ).status_code
        == 404
    )
    assert (
        client.post(
            f"/v1/entries/{seeded.entry_ids['restricted']}/repair",
            headers=seeded.auth("lists"),
            json={"repaired_on": "soon"},
        ).status_code
        == 422
    )
    assert (
        client.post(
            f"/v1/entries/{seeded.entry_ids['restricted']}/revoke",
            headers=seeded.auth(),
            json={"note": "x"},
        ).status_code
        == 403
    )


def test_grade_reaches_checks(client: Client, seeded: Seeded) -> None:
    response = client.put(
        f"/v1/subjects/{CLEAR}/grade",
        headers=seeded.auth("lists"),
        json={"value": "poor", "source": "公共信用综合评价", "as_of": "2026-11-01"},
    )
    assert response.status_code == 200, response.text
    verdict_becomes(client, seeded, CLEAR, "inspection", "attention")
    assert (
        client.put(
            f"/v1/subjects/{CLEAR}/grade", headers=seeded.auth("lists"), json={"value": "splendid"}
        ).status_code
        == 422
    )
    bad = client.put(
        "/v1/subjects/91110000600037341X/grade",
        headers=seeded.auth("lists"),
        json={"value": "good"},
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["rule"] == "check_digit"


def test_subject_view(client: Client, seeded: Seeded) -> None:
    made = client.get(
        "/v1/check", params={"uscc": RESTRICTED, "matter": "bidding"}, headers=seeded.auth()
    ).json()
    view = client.get(f"/v1/subjects/{RESTRICTED}", headers=seeded.auth("reports"))
    assert view.status_code == 200, view.text
    body = view.json()
    assert body["uscc"] == RESTRICTED
    assert body["entries"][0]["list_type"] == "court_defaulter"
    assert body["entries"][0]["history"][0]["status"] == "active"
    assert body["recent_checks"][0]["check_id"] == made["check_id"]
    assert body["recent_checks"][0]["measures"] == [{"code": "P-BID-01", "state": "apply"}]
    assert client.get(f"/v1/subjects/{RESTRICTED}", headers=seeded.auth()).status_code == 403

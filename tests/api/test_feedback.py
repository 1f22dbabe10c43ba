"""POST /v1/checks/{id}/feedback (反馈) and GET /v1/checks/{id}."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient

from tests.fixtures import CLEAR, RESTRICTED, SUSPENDED, Seeded

Client = TestClient[Any]


@pytest.fixture
def licensing_check(client: Client, seeded: Seeded) -> Any:
    """A restricted licensing check: P-LIC-01, P-LIC-02, P-LIC-03, M-LIC-01 apply."""
    response = client.get(
        "/v1/check", params={"uscc": RESTRICTED, "matter": "licensing"}, headers=seeded.auth()
    )
    assert response.status_code == 200
    return response.json()


def full_feedback() -> dict[str, Any]:
    return {
        "measures": [
            {"code": "P-LIC-01", "executed": True},
            {"code": "P-LIC-02", "executed": True},
            {"code": "P-LIC-03", "executed": False, "reason": "本次申请不涉及新增项目"},
            {"code": "M-LIC-01", "executed": True},
        ],
        "outcome": "不予受理",
        "handled_by": "officer-17",
        "handled_at": "2026-11-21T16:20:00+08:00",
    }


def post(client: Client, seeded: Seeded, check_id: str, body: Any, who: str = "approval") -> Any:
    return client.post(f"/v1/checks/{check_id}/feedback", json=body, headers=seeded.auth(who))


def test_201_then_200_for_the_same_then_409_for_another(
    client: Client, seeded: Seeded, licensing_check: Any
) -> None:
    check_id = licensing_check["check_id"]
    first = post(client, seeded, check_id, full_feedback())
    assert first.status_code == 201, first.text
    assert first.json()["outcome"] == "不予受理"
    again = post(client, seeded, check_id, full_feedback())
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    changed = full_feedback()
    changed["outcome"] = "已受理"
    conflict = post(client, seeded, check_id, changed)
    assert conflict.status_code == 409
    assert conflict.headers["content-type"].startswith("application/problem+json")
    stored = seeded.run(lambda store: store.get_feedback(check_id))
    assert stored is not None
    assert stored.outcome == "不予受理"


def test_the_check_shows_its_feedback(client: Client, seeded: Seeded, licensing_check: Any) -> None:
    check_id = licensing_check["check_id"]
    shown = client.get(f"/v1/checks/{check_id}", headers=seeded.auth()).json()
    assert shown["feedback"] is None
    assert shown["verdict"] == "restricted"
    post(client, seeded, check_id, full_feedback())
    shown = client.get(f"/v1/checks/{check_id}", headers=seeded.auth()).json()
    assert shown["feedback"]["measures"][2] == {
        "code": "P-LIC-03",
        "executed": False,
        "reason": "本次申请不涉及新增项目",
    }
    assert {k: v for k, v in shown.items() if k != "feedback"} == licensing_check


def test_422_when_an_applied_measure_is_missing(
    client: Client, seeded: Seeded, licensing_check: Any
) -> None:
    body = full_feedback()
    body["measures"] = body["measures"][:3]
    response = post(client, seeded, licensing_check["check_id"], body)
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["rule"] == "missing_measure"
    assert "M-LIC-01" in error["message"]


def test_422_for_a_measure_not_returned_or_twice_or_without_reason(
    client: Client, seeded: Seeded, licensing_check: Any
) -> None:
    body = full_feedback()
    body["measures"].append({"code": "P-BID-01", "executed": True})
    body["measures"].append({"code": "P-LIC-01", "executed": True})
    body["measures"][1] = {"code": "P-LIC-02", "executed": False}
    response = post(client, seeded, licensing_check["check_id"], body)
    assert response.status_code == 422
    rules = {(e["field"], e["rule"]) for e in response.json()["errors"]}
    assert rules == {
        ("measures[4].code", "unknown_measure"),
        ("measures[5].code", "duplicate_measure"),
        ("measures[1].reason", "reason_required"),
    }
    assert seeded.run(lambda store: store.get_feedback(licensing_check["check_id"])) is None


def test_422_for_a_malformed_body(client: Client, seeded: Seeded, licensing_check: Any) -> None:
    response = post(
        client,
        seeded,
        licensing_check["check_id"],
        {"measures": [{"code": "P-LIC-01", "executed": "yes"}]},
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")


def test_suspended_measures_need_no_feedback_but_may_have_some(
    client: Client, seeded: Seeded
) -> None:
    check = client.get(
        "/v1/check", params={"uscc": SUSPENDED, "matter": "bidding"}, headers=seeded.auth()
    ).json()
    assert check["feedback_required"] is False
    response = post(client, seeded, check["check_id"], {"measures": [], "outcome": "已受理"})
    assert response.status_code == 201


def test_404_for_another_callers_check_and_for_none(
    client: Client, seeded: Seeded, licensing_check: Any
) -> None:
    check_id = licensing_check["check_id"]
    assert post(client, seeded, check_id, full_feedback(), who="other").status_code == 404
    assert client.get(f"/v1/checks/{check_id}", headers=seeded.auth("other")).status_code == 404
    assert (
        post(client, seeded, "0193b6c2-0000-7000-8000-000000000000", full_feedback()).status_code
        == 404
    )


def test_reports_scope_reads_any_check(
    client: Client, seeded: Seeded, licensing_check: Any
) -> None:
    response = client.get(
        f"/v1/checks/{licensing_check['check_id']}", headers=seeded.auth("reports")
    )
    assert response.status_code == 200
    assert response.json()["check_id"] == licensing_check["check_id"]


def test_401_and_403(client: Client, seeded: Seeded, licensing_check: Any) -> None:
    check_id = licensing_check["check_id"]
    assert client.post(f"/v1/checks/{check_id}/feedback", json=full_feedback()).status_code == 401
    assert post(client, seeded, check_id, full_feedback(), who="checkonly").status_code == 403
    assert client.get(f"/v1/checks/{check_id}", headers=seeded.auth("lists")).status_code == 403


def test_feedback_on_a_clear_check(client: Client, seeded: Seeded) -> None:
    check = client.get(
        "/v1/check", params={"uscc": CLEAR, "matter": "bidding"}, headers=seeded.auth()
    ).json()
    assert (
        post(client, seeded, check["check_id"], {"measures": [], "outcome": "已受理"}).status_code
        == 201
    )

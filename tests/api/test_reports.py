"""GET /v1/reports/loop through the app: the numbers match the checks and feedback made
here, as JSON and as CSV; bad parameters are refused naming the parameter."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

import pytest
from litestar.testing import TestClient

from gateway.clock import CST
from tests.api.test_feedback import full_feedback
from tests.fixtures import CLEAR, INCENTIVE, RESTRICTED, Seeded

Client = TestClient[Any]
TODAY = datetime.now(CST).date().isoformat()


def check(client: Client, seeded: Seeded, uscc: str, matter: str, who: str) -> dict[str, Any]:
    response = client.get(
        "/v1/check", params={"uscc": uscc, "matter": matter}, headers=seeded.auth(who)
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def report(client: Client, seeded: Seeded, group_by: str, **params: str) -> Any:
    response = client.get(
        "/v1/reports/loop",
        params={"from": TODAY, "to": TODAY, "group_by": group_by, **params},
        headers=seeded.auth("reports"),
    )
    assert response.status_code == 200, response.text
    return response


def applied(answer: dict[str, Any]) -> int:
    return sum(m["state"] == "apply" for m in answer["measures"])


def test_the_report_adds_up_the_checks_and_feedback_made(client: Client, seeded: Seeded) -> None:
    mine = [
        check(client, seeded, RESTRICTED, "licensing", "approval"),
        check(client, seeded, RESTRICTED, "licensing", "approval"),
        check(client, seeded, INCENTIVE, "licensing", "approval"),
        check(client, seeded, CLEAR, "licensing", "approval"),
    ]
    theirs = [check(client, seeded, RESTRICTED, "bidding", "other")]
    posted = client.post(
        f"/v1/checks/{mine[0]['check_id']}/feedback", json=full_feedback(), headers=seeded.auth()
    )
    assert posted.status_code == 201

    by_caller = {r["key"]: r for r in report(client, seeded, "caller").json()["rows"]}
    approval = by_caller["approval system（测试部门）"]
    assert approval == {
        "key": "approval system（测试部门）",
        "checks": 4,
        "hits": sum(len(a["hits"]) for a in mine),
        "measures_applied": sum(applied(a) for a in mine),
        "feedback_received": 1,
        "executed": 3,
        "not_executed": 1,
        "feedback_pending": sum(applied(a) > 0 for a in mine) - 1,
        "feedback_overdue": 0,  # made today
    }
    assert by_caller["other system（测试部门）"]["checks"] == 1
    assert by_caller["other system（测试部门）"]["feedback_pending"] == 1

    by_list = {r["key"]: r for r in report(client, seeded, "list_type").json()["rows"]}
    assert by_list["court_defaulter"]["checks"] == 3
    assert by_list["court_defaulter"]["feedback_received"] == 1
    assert by_list["tax_grade_a"]["checks"] == 1

    by_measure = {r["key"]: r for r in report(client, seeded, "measure").json()["rows"]}
    assert by_measure["P-LIC-01"]["checks"] == 2
    assert by_measure["P-LIC-03"]["not_executed"] == 1
    assert by_measure["P-LIC-01"]["feedback_pending"] == 1

    authorities = report(client, seeded, "authority").json()
    assert authorities["group_by"] == "authority"
    assert authorities["rows"][0]["key"] == "北京市第一中级人民法院"
    assert theirs[0]["verdict"] == "restricted"


def test_the_same_report_as_csv(client: Client, seeded: Seeded) -> None:
    check(client, seeded, RESTRICTED, "bidding", "approval")
    response = report(client, seeded, "caller", format="csv")
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert rows[0]["caller"] == "approval system（测试部门）"
    assert rows[0]["checks"] == "1"
    assert list(rows[0]) == [
        "caller", "checks", "hits", "measures_applied", "feedback_received", "executed",
        "not_executed", "feedback_pending", "feedback_overdue",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-13-01", "to": "2026-11-30"}, "from"),
        ({"from": "2026-11-30", "to": "2026-11-01"}, "to"),
        ({"from": "2024-01-01", "to": "2026-11-30"}, "to"),
        ({"from": "2026-11-01", "to": "2026-11-30", "group_by": "uscc"}, "group_by"),
        ({"from": "2026-11-01", "to": "2026-11-30", "format": "xlsx"}, "format"),
        ({"to": "2026-11-30"}, "from"),
    ],
)
def test_bad_parameters_are_refused_naming_them(
    client: Client, seeded: Seeded, params: dict[str, str], field: str
) -> None:
    response = client.get("/v1/reports/loop", params=params, headers=seeded.auth("reports"))
    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in response.text

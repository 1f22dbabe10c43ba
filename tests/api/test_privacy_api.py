"""Citizen ID numbers through the API: never in clear in an error, a log record or an
answer (masked: first 6 and last 4 characters), on the real app and a real SQLite file.

``plain`` is the app as ``create_app`` builds it: behind
:func:`gateway.privacy.redact_responses`, with
:func:`gateway.privacy.install_log_redaction` called once it is built (after Litestar
configured logging).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from gateway.settings import Settings
from tests.fixtures import RESTRICTED, Seeded, entry, seed_database

Client = TestClient[Any]

WELL_KNOWN = "11010519491231002X"
MASKED = "110105********002X"
OTHER = "110101199003071233"
OTHER_MASKED = "110101********1233"
#: 个体工商户 (92…): an individual business, whose operator is a natural person.
PERSONAL_BUSINESS = "92340602MA2PBMEM24"
SUBJECT_NAME = f"六安某某商贸部（经营者张三，身份证号{WELL_KNOWN}）"
DOCUMENT_NO = f"(2026)皖1502执123号，被执行人身份证号{OTHER}"


@pytest.fixture
def seeded(tmp_path: Path) -> Seeded:
    """The shared test data, and an individual business listed with its operator's
    number in its name and in the court's case number (as some sources publish them)."""
    seeded = seed_database(tmp_path / "gateway.db")
    person = entry(
        PERSONAL_BUSINESS,
        "court_defaulter",
        "person-1",
        subject_name=SUBJECT_NAME,
        document_no=DOCUMENT_NO,
        reason=f"被执行人{WELL_KNOWN}有履行能力而拒不履行",
    )
    seeded.run(lambda store: store.upsert_entries([person], "test"))
    return seeded


def _settings(seeded: Seeded) -> Settings:
    return Settings(db=str(seeded.path), poll_interval=0.05, keys_refresh=0.2)


@pytest.fixture
def plain(client: Client) -> Client:
    return client


def assert_private(text: str, *masks: str) -> None:
    assert WELL_KNOWN not in text
    assert OTHER not in text
    assert WELL_KNOWN[6:14] not in text  # the birth date
    for mask in masks:
        assert mask in text


# --- errors -------------------------------------------------------------------------------------


def test_a_citizen_id_sent_as_uscc_is_a_422_that_shows_it_masked(
    plain: Client, seeded: Seeded
) -> None:
    for response in (
        plain.get(
            "/v1/check", params={"uscc": WELL_KNOWN, "matter": "bidding"}, headers=seeded.auth()
        ),
        plain.post(
            "/v1/check", json={"uscc": WELL_KNOWN, "matter": "bidding"}, headers=seeded.auth()
        ),
    ):
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert_private(response.text, MASKED)
        problem = response.json()
        assert problem["type"] == "/problems/invalid-uscc"
        assert problem["errors"][0]["rule"] == "region"  # the rule that failed, as before
        assert problem["errors"][0]["message"].startswith(f"{MASKED} 是公民身份号码")


def test_problems_that_quote_the_request_mask_the_number(plain: Client, seeded: Seeded) -> None:
    auth = seeded.auth()
    responses = [
        plain.get("/v1/check", params={"uscc": RESTRICTED, "matter": WELL_KNOWN}, headers=auth),
        plain.post(
            "/v1/check", json={"uscc": RESTRICTED, "matter": "bidding", WELL_KNOWN: 1}, headers=auth
        ),
        plain.get(f"/v1/checks/{WELL_KNOWN}", headers=auth),
        plain.get(f"/v1/subjects/{WELL_KNOWN}", headers=seeded.auth("lists")),
    ]
    assert [r.status_code for r in responses] == [422, 422, 404, 422]
    for response in responses:
        assert_private(response.text, MASKED)


# --- logs ---------------------------------------------------------------------------------------


def requests_with_numbers(client: Client, seeded: Seeded) -> None:
    auth = seeded.auth()
    client.get("/v1/check", params={"uscc": WELL_KNOWN, "matter": "bidding"}, headers=auth)
    client.get("/v1/check", params={"uscc": RESTRICTED, "matter": WELL_KNOWN}, headers=auth)
    client.post("/v1/check/batch", json={"uscc": [WELL_KNOWN], "matter": "bidding"}, headers=auth)
    client.get(f"/v1/checks/{WELL_KNOWN}", headers=auth)  # aiosqlite logs the query's parameters
    client.get(f"/v1/subjects/{PERSONAL_BUSINESS}", headers=seeded.auth("lists"))


def assert_no_record_holds_the_number(caplog: pytest.LogCaptureFixture) -> None:
    # The test client's own request log (httpx) is the caller's, not the gateway's.
    records = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert any(r.name == "aiosqlite" for r in records)  # DEBUG records were captured
    for record in records:
        assert WELL_KNOWN not in record.getMessage(), record.name
        assert OTHER not in record.getMessage(), record.name
        assert WELL_KNOWN not in (record.exc_text or "")


def test_no_log_record_of_such_requests_holds_the_number(
    plain: Client, seeded: Seeded, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    requests_with_numbers(plain, seeded)
    assert_no_record_holds_the_number(caplog)


def licensing_feedback() -> dict[str, Any]:
    return {
        "measures": [
            {"code": "P-LIC-01", "executed": True},
            {"code": "P-LIC-02", "executed": True},
            {"code": "P-LIC-03", "executed": False, "reason": f"申请人{OTHER}已撤回申请"},
            {"code": "M-LIC-01", "executed": True},
        ],
        "outcome": "不予受理",
        "handled_by": f"窗口 3 张三（{WELL_KNOWN}）",
    }


def feedback_round(client: Client, seeded: Seeded) -> tuple[Any, Any]:
    """A check with a case reference and feedback that both hold numbers; the feedback's
    answer and GET /v1/checks/{id}."""
    check = client.get(
        "/v1/check",
        params={"uscc": RESTRICTED, "matter": "licensing", "case_ref": f"受理号 {OTHER}"},
        headers=seeded.auth(),
    )
    assert check.status_code == 200, check.text
    check_id = check.json()["check_id"]
    posted = client.post(
        f"/v1/checks/{check_id}/feedback", json=licensing_feedback(), headers=seeded.auth()
    )
    assert posted.status_code == 201, posted.text
    read = client.get(f"/v1/checks/{check_id}", headers=seeded.auth())
    assert read.status_code == 200, read.text
    return posted, read


def test_feedback_and_case_ref_come_back_masked(plain: Client, seeded: Seeded) -> None:
    posted, read = feedback_round(plain, seeded)
    assert_private(posted.text, MASKED, OTHER_MASKED)
    assert posted.json()["handled_by"] == f"窗口 3 张三（{MASKED}）"
    assert_private(read.text, MASKED, OTHER_MASKED)
    body = read.json()
    assert body["case_ref"] == f"受理号 {OTHER_MASKED}"
    assert body["feedback"]["handled_by"] == f"窗口 3 张三（{MASKED}）"
    assert body["feedback"]["measures"][2]["reason"] == f"申请人{OTHER_MASKED}已撤回申请"
    assert body["feedback"]["outcome"] == "不予受理"


def test_a_subjects_entries_come_back_masked(plain: Client, seeded: Seeded) -> None:
    response = plain.get(f"/v1/subjects/{PERSONAL_BUSINESS}", headers=seeded.auth("lists"))
    assert response.status_code == 200, response.text
    assert_private(response.text, MASKED, OTHER_MASKED)
    (listed,) = response.json()["entries"]
    assert listed["subject_name"] == f"六安某某商贸部（经营者张三，身份证号{MASKED}）"
    assert listed["document_no"] == f"(2026)皖1502执123号，被执行人身份证号{OTHER_MASKED}"
    assert listed["reason"] == f"被执行人{MASKED}有履行能力而拒不履行"


def test_a_check_answers_with_its_free_text_masked(plain: Client, seeded: Seeded) -> None:
    response = plain.get(
        "/v1/check",
        params={"uscc": PERSONAL_BUSINESS, "matter": "bidding", "case_ref": f"受理号 {OTHER}"},
        headers=seeded.auth(),
    )
    assert response.status_code == 200, response.text
    assert_private(response.text, MASKED, OTHER_MASKED)
    (hit,) = response.json()["hits"]
    assert hit["subject_name"] == f"六安某某商贸部（经营者张三，身份证号{MASKED}）"


def test_a_batch_item_echoes_a_citizen_id_masked(plain: Client, seeded: Seeded) -> None:
    response = plain.post(
        "/v1/check/batch",
        json={"uscc": [WELL_KNOWN, RESTRICTED], "matter": "bidding"},
        headers=seeded.auth(),
    )
    assert response.status_code == 200, response.text
    assert_private(response.text, MASKED)
    assert response.json()["results"][0]["uscc"] == MASKED

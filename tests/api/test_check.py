"""GET/POST /v1/check and POST /v1/check/batch against the real app and a real SQLite file."""

from __future__ import annotations

import asyncio
import doctest
import random
import re
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from litestar.testing import TestClient

from gateway.api import check as check_module
from gateway.api.check import _query_params
from gateway.app import create_app
from gateway.demo import make_uscc
from gateway.settings import Settings
from tests.fixtures import (
    ATTENTION,
    CLEAR,
    INCENTIVE,
    REPAIRED,
    RESTRICTED,
    SUSPENDED,
    Seeded,
)

Client = TestClient[Any]


def check(client: Client, seeded: Seeded, uscc: str, matter: str, **params: str) -> Any:
    response = client.get(
        "/v1/check", params={"uscc": uscc, "matter": matter, **params}, headers=seeded.auth()
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_restricted(client: Client, seeded: Seeded) -> None:
    body = check(client, seeded, RESTRICTED, "bidding")
    assert body["verdict"] == "restricted"
    assert body["uscc"] == RESTRICTED
    assert body["feedback_required"] is True
    [hit] = body["hits"]
    assert hit == {
        "entry_id": seeded.entry_ids["restricted"],
        "subject_name": "某某建设有限公司",
        "list_type": "court_defaulter",
        "list_kind": "black",
        "list_name": "失信被执行人",
        "authority": "北京市第一中级人民法院",
        "listed_on": hit["listed_on"],
        "expires_on": hit["expires_on"],
        "status": "active",
        "document_no": "(2026)京01执123号",
    }
    [measure] = body["measures"]
    assert measure["code"] == "P-BID-01"
    assert measure["state"] == "apply"
    assert measure["triggered_by"] == [seeded.entry_ids["restricted"]]
    assert any("第八条" in b for b in measure["basis"])
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", body["check_id"]
    )
    assert body["checked_at"].endswith("+08:00")
    assert body["catalog_version"].startswith("2026.11.0+")
    assert body["snapshot_version"] > 0
    assert body["degraded"] is False


def test_attention_when_punishment_suspended_by_objection(client: Client, seeded: Seeded) -> None:
    body = check(client, seeded, SUSPENDED, "procurement")
    assert body["verdict"] == "attention"
    assert [(m["code"], m["state"]) for m in body["measures"]] == [("P-PRO-01", "suspended")]
    assert body["hits"][0]["status"] == "objection_pending"
    assert body["feedback_required"] is False


def test_attention_for_a_poor_grade(client: Client, seeded: Seeded) -> None:
    body = check(client, seeded, ATTENTION, "inspection")
    assert body["verdict"] == "attention"
    assert body["grade"]["value"] == "poor"
    assert {m["code"] for m in body["measures"]} == {"M-INS-01", "M-INS-02"}
    assert body["measures"][0]["triggered_by"] == ["grade:poor"]


def test_incentive(client: Client, seeded: Seeded) -> None:
    body = check(client, seeded, INCENTIVE, "licensing")
    assert body["verdict"] == "incentive"
    assert body["grade"] == {"value": "good", "source": "公共信用综合评价", "as_of": "2026-10-01"}
    codes = {m["code"]: m for m in body["measures"]}
    assert set(codes) == {"I-LIC-01", "I-LIC-02", "I-LIC-03", "I-LIC-04"}
    assert codes["I-LIC-01"]["triggered_by"] == [seeded.entry_ids["incentive"], "grade:good"]


@pytest.mark.parametrize("uscc", [CLEAR, REPAIRED])
def test_clear(client: Client, seeded: Seeded, uscc: str) -> None:
    body = check(client, seeded, uscc, "bidding")
    assert body["verdict"] == "clear"
    assert body["hits"] == []
    assert body["measures"] == []
    assert body["grade"] is None
    assert body["feedback_required"] is False


def test_post_with_commitment_and_references(client: Client, seeded: Seeded) -> None:
    response = client.post(
        "/v1/check",
        headers=seeded.auth(),
        json={
            "uscc": CLEAR,
            "matter": "licensing",
            "commitment": True,
            "matter_code": "330100-001-01",
            "case_ref": "APP-2026-0001",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["verdict"] == "incentive"
    assert [m["code"] for m in body["measures"]] == ["I-LIC-05"]
    assert body["measures"][0]["triggered_by"] == ["commitment"]
    assert (body["matter_code"], body["case_ref"]) == ("330100-001-01", "APP-2026-0001")


def test_code_is_normalised(client: Client, seeded: Seeded) -> None:
    body = check(client, seeded, "9111 0000-6000 3734 1l", "bidding")
    assert body["uscc"] == RESTRICTED
    assert body["verdict"] == "restricted"


def test_x_api_key_header(client: Client, seeded: Seeded) -> None:
    response = client.get(
        "/v1/check",
        params={"uscc": CLEAR, "matter": "bidding"},
        headers={"X-API-Key": seeded.keys["approval"]},
    )
    assert response.status_code == 200


# --- errors -----------------------------------------------------------------------------


def problem(response: Any, status: int) -> Any:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail"} <= set(body)
    return body


def test_401_without_key_and_with_unknown_key(client: Client) -> None:
    params = {"uscc": CLEAR, "matter": "bidding"}
    body = problem(client.get("/v1/check", params=params), 401)
    assert "Authorization: Bearer" in body["detail"]
    problem(
        client.get("/v1/check", params=params, headers={"Authorization": "Bearer gw_nope_nope"}),
        401,
    )
    problem(client.post("/v1/check", json=params), 401)


def test_403_without_check_scope(client: Client, seeded: Seeded) -> None:
    body = problem(
        client.get(
            "/v1/check", params={"uscc": CLEAR, "matter": "bidding"}, headers=seeded.auth("reports")
        ),
        403,
    )
    assert "'check'" in body["detail"]


@pytest.mark.parametrize(
    ("uscc", "rule"),
    [
        ("91110000600037341", "length"),
        ("91110000600O37341L", "charset"),
        ("B1110000600037341L", "authority_code"),
        ("94110000600037341L", "category_code"),
        ("91AB0000600037341L", "region"),
        ("911100006000373X1L", "organisation_code_check_digit"),
        ("91110000600037341M", "check_digit"),
    ],
)
def test_422_names_the_failed_uscc_rule(
    client: Client, seeded: Seeded, uscc: str, rule: str
) -> None:
    body = problem(
        client.get("/v1/check", params={"uscc": uscc, "matter": "bidding"}, headers=seeded.auth()),
        422,
    )
    assert body["errors"][0]["field"] == "uscc"
    assert body["errors"][0]["rule"] == rule
    assert body["type"] == "/problems/invalid-uscc"


def test_422_unknown_matter_lists_the_valid_ones(client: Client, seeded: Seeded) -> None:
    body = problem(
        client.post(
            "/v1/check", headers=seeded.auth(), json={"uscc": CLEAR, "matter": "tendering"}
        ),
        422,
    )
    assert body["errors"][0]["field"] == "matter"
    for matter in (
        "licensing",
        "bidding",
        "procurement",
        "land_resources",
        "inspection",
        "public_service",
        "honours",
        "subsidy",
    ):
        assert matter in body["detail"]


def test_422_missing_fields(client: Client, seeded: Seeded) -> None:
    body = problem(client.get("/v1/check", params={"uscc": CLEAR}, headers=seeded.auth()), 422)
    assert body["errors"][0]["field"] == "matter"
    body = problem(client.post("/v1/check", headers=seeded.auth(), json={"matter": "bidding"}), 422)
    assert "uscc" in body["detail"]
    body = problem(
        client.post("/v1/check", headers=seeded.auth(), json={"uscc": 12, "matter": "bidding"}), 422
    )
    assert body["errors"][0]["field"] == "uscc"


def test_400_malformed_json_415_wrong_type_413_too_big(client: Client, seeded: Seeded) -> None:
    headers = {**seeded.auth(), "Content-Type": "application/json"}
    problem(client.post("/v1/check", headers=headers, content=b'{"uscc": '), 400)
    problem(
        client.post(
            "/v1/check", headers={**seeded.auth(), "Content-Type": "text/plain"}, content=b"uscc=1"
        ),
        415,
    )
    problem(client.post("/v1/check", headers=headers, content=b" " * 20_000), 413)


def test_405_other_methods(client: Client, seeded: Seeded) -> None:
    problem(client.delete("/v1/check", headers=seeded.auth()), 405)


# --- recorded -------------------------------------------------------------------------


def test_every_check_is_recorded_as_answered(client: Client, seeded: Seeded) -> None:
    body = check(client, seeded, RESTRICTED, "bidding", case_ref="A-1")
    stored = seeded.stored_check(body["check_id"])
    assert stored is not None
    assert stored.uscc == RESTRICTED
    assert stored.verdict == "restricted"
    assert stored.case_ref == "A-1"
    assert stored.catalog_version == body["catalog_version"]
    assert stored.snapshot_version == body["snapshot_version"]
    assert stored.response == client.get(
        f"/v1/checks/{body['check_id']}", headers=seeded.auth()
    ).content.replace(b',"feedback":null}', b"}")


# --- batch ----------------------------------------------------------------------------


def test_batch_of_1000_with_one_invalid_code(client: Client, seeded: Seeded) -> None:
    rnd = random.Random(1)
    codes = [make_uscc(rnd) for _ in range(997)] + [RESTRICTED, SUSPENDED]
    codes.insert(500, "91110000600037341X")  # bad check digit
    response = client.post(
        "/v1/check/batch",
        headers=seeded.auth(),
        json={"matter": "bidding", "uscc": codes, "case_ref": "T-1"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    results = body["results"]
    assert len(results) == 1000
    assert [r["uscc"] for r in results] == codes
    errors = [r for r in results if "error" in r]
    assert len(errors) == 1
    assert errors[0]["error"]["errors"][0]["rule"] == "check_digit"
    assert results[500] is errors[0]
    answered = [r for r in results if "check_id" in r]
    assert len({r["check_id"] for r in answered}) == 999
    assert results[-2]["verdict"] == "restricted"
    assert results[-1]["verdict"] == "attention"
    stored = seeded.stored_check(results[-2]["check_id"])
    assert stored is not None
    assert stored.batch_id == body["batch_id"]


def test_a_batch_lets_other_requests_in_while_it_decides(seeded: Seeded) -> None:
    """A batch of 1,000 does not hold the event loop for all of its codes: a task beside it
    runs at least every 100 codes decided (about 1.5 ms of work; counted by the checks
    tallied between two of its turns), so single checks arriving meanwhile are answered."""
    rnd = random.Random(2)
    codes = [make_uscc(rnd) for _ in range(1000)]
    app = create_app(Settings(db=str(seeded.path)))
    decided_between_turns: list[int] = []

    async def scenario() -> None:
        runtime = app.state.runtime
        await runtime.start()  # as the lifespan does; the app then runs in this loop
        try:
            transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]  # ASGI typings differ
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                tally = runtime.metrics.tally
                answered = False

                async def beside() -> None:
                    last = sum(tally.checks.values())
                    while not answered:
                        await asyncio.sleep(0)
                        now = sum(tally.checks.values())
                        decided_between_turns.append(now - last)
                        last = now

                task = asyncio.create_task(beside())
                response = await client.post(
                    "/v1/check/batch",
                    headers=seeded.auth(),
                    json={"matter": "bidding", "uscc": codes},
                )
                answered = True
                await task
                assert response.status_code == 200, response.text
                assert len(response.json()["results"]) == 1000
        finally:
            await runtime.stop()

    asyncio.run(scenario())
    assert sum(decided_between_turns) == 1000
    assert max(decided_between_turns) <= 100


def test_a_batch_of_invalid_codes_only_answers_each_with_its_error(
    client: Client, seeded: Seeded
) -> None:
    codes = ["91110000600037341X", "not a code"]
    response = client.post(
        "/v1/check/batch", headers=seeded.auth(), json={"matter": "bidding", "uscc": codes}
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["uscc"] for r in results] == codes
    assert all("error" in r and "check_id" not in r for r in results)


def test_batch_limits(client: Client, seeded: Seeded) -> None:
    rnd = random.Random(2)
    problem(
        client.post(
            "/v1/check/batch",
            headers=seeded.auth(),
            json={"matter": "bidding", "uscc": [make_uscc(rnd) for _ in range(1001)]},
        ),
        413,
    )
    problem(
        client.post(
            "/v1/check/batch", headers=seeded.auth(), json={"matter": "bidding", "uscc": []}
        ),
        422,
    )
    problem(
        client.post(
            "/v1/check/batch", headers=seeded.auth(), json={"matter": "tendering", "uscc": [CLEAR]}
        ),
        422,
    )
    problem(client.post("/v1/check/batch", json={"matter": "bidding", "uscc": [CLEAR]}), 401)
    problem(
        client.post(
            "/v1/check/batch",
            headers=seeded.auth("reports"),
            json={"matter": "bidding", "uscc": [CLEAR]},
        ),
        403,
    )


def test_422_for_overlong_values(client: Client, seeded: Seeded) -> None:
    body = problem(
        client.get(
            "/v1/check", params={"uscc": "9" * 65, "matter": "bidding"}, headers=seeded.auth()
        ),
        422,
    )
    assert body["errors"][0]["field"] == "uscc"
    body = problem(
        client.post(
            "/v1/check",
            headers=seeded.auth(),
            json={"uscc": CLEAR, "matter": "bidding", "case_ref": "x" * 257},
        ),
        422,
    )
    assert body["errors"][0]["field"] == "case_ref"


def test_the_servers_own_time_is_in_server_timing(client: Client, seeded: Seeded) -> None:
    single = client.get(
        "/v1/check", params={"uscc": RESTRICTED, "matter": "bidding"}, headers=seeded.auth()
    )
    batch = client.post(
        "/v1/check/batch",
        json={"matter": "bidding", "uscc": [RESTRICTED, CLEAR]},
        headers=seeded.auth(),
    )
    for response in (single, batch):
        assert response.status_code == 200
        found = re.fullmatch(r"app;dur=(\d+\.\d{2})", response.headers["server-timing"])
        assert found, response.headers["server-timing"]
        assert 0 < float(found[1]) < 10_000


def test_the_query_reads_as_parse_qsl_reads_it() -> None:
    """The direct split of a query without escapes gives what ``parse_qsl`` gives (blank
    values kept, the last of a repeated name), on queries drawn from the characters that
    make a difference."""
    rng = random.Random(5)
    alphabet = ["uscc", "matter", "=", "&", "&&", "9", "a", "L", "%20", "+", "%E6%B5%99", ";"]
    for _ in range(2_000):
        query = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        expected = dict(parse_qsl(query, keep_blank_values=True, errors="strict"))
        assert _query_params(query.encode()) == expected, query
    assert doctest.testmod(check_module).failed == 0

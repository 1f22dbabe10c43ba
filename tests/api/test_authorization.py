"""The authorization matrix: every endpoint of the OpenAPI document × every kind of key.

Each request is well formed, so the answer says only whether the key may call the
endpoint: 401 without a valid key, 403 with a key lacking the scope, anything else
(200, 201, 404, 409 …) once let in. A route added without a row here fails the test.
"""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient

from tests.fixtures import CLEAR, RESTRICTED, Seeded

Client = TestClient[Any]

CHECK = {"uscc": RESTRICTED, "matter": "bidding"}
#: The keys of the seeded store (their scopes) and two callers without a valid key.
KEYS = {
    "approval": {"check", "feedback"},
    "checkonly": {"check"},
    "reports": {"reports"},
    "lists": {"lists"},
    "admin": {"admin"},
}
PUBLIC = {"*"}
ANY_KEY = {"check", "feedback", "lists", "reports", "admin"}

#: (method, path template, scopes any of which lets a key in, request kwargs)
MATRIX: list[tuple[str, str, set[str], dict[str, Any]]] = [
    ("GET", "/v1/check", {"check"}, {"params": CHECK}),
    ("POST", "/v1/check", {"check"}, {"json": CHECK}),
    ("POST", "/v1/check/batch", {"check"}, {"json": {"matter": "bidding", "uscc": [CLEAR]}}),
    ("GET", "/v1/checks/{check_id}", {"check", "feedback", "reports"}, {}),
    ("POST", "/v1/checks/{check_id}/feedback", {"feedback"}, {"json": {"measures": []}}),
    ("GET", "/v1/catalog", ANY_KEY, {}),
    ("GET", "/healthz", PUBLIC, {}),
    ("GET", "/readyz", PUBLIC, {}),
    ("GET", "/metrics", PUBLIC, {}),
    ("POST", "/v1/lists/entries", {"lists"}, {"json": []}),
    (
        "POST",
        "/v1/entries/{entry_id}/objection",
        {"lists"},
        {"json": {"opened_on": "2026-11-01"}},
    ),
    ("POST", "/v1/entries/{entry_id}/objection/resolve", {"lists"}, {"json": {"upheld": False}}),
    (
        "POST",
        "/v1/entries/{entry_id}/repair",
        {"lists"},
        {"json": {"repaired_on": "2026-11-01", "decision_no": "(2026)修002号"}},
    ),
    ("POST", "/v1/entries/{entry_id}/revoke", {"lists"}, {"json": {"note": "撤销"}}),
    ("PUT", "/v1/subjects/{uscc}/grade", {"lists"}, {"json": {"value": "good"}}),
    ("GET", "/v1/subjects/{uscc}", {"lists", "reports"}, {}),
    ("POST", "/v1/admin/catalog/reload", {"admin"}, {}),
    ("GET", "/v1/admin/keys", {"admin"}, {}),
    (
        "POST",
        "/v1/admin/keys",
        {"admin"},
        {"json": {"caller": "x", "department": "y", "scopes": ["check"]}},
    ),
    ("POST", "/v1/admin/keys/{key_id}/revoke", {"admin"}, {}),
    ("POST", "/v1/admin/keys/{key_id}/rotate", {"admin"}, {"json": {"overlap_seconds": 60}}),
    ("PUT", "/v1/admin/keys/{key_id}/limits", {"admin"}, {"json": {"rate_per_second": 100.0}}),
    ("GET", "/v1/admin/audit", {"admin"}, {}),
    (
        "GET",
        "/v1/reports/loop",
        {"reports"},
        {"params": {"from": "2026-11-01", "to": "2026-11-30", "group_by": "caller"}},
    ),
]


def test_the_matrix_covers_every_endpoint(client: Client) -> None:
    document = client.get("/schema/openapi.json").json()
    documented = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    assert documented == {(method, path) for method, path, _, _ in MATRIX}


@pytest.mark.parametrize(
    ("method", "template", "allowed", "kwargs"),
    MATRIX,
    ids=[f"{m} {p}" for m, p, _, _ in MATRIX],
)
def test_who_may_call_what(
    client: Client,
    seeded: Seeded,
    method: str,
    template: str,
    allowed: set[str],
    kwargs: dict[str, Any],
) -> None:
    made = client.post("/v1/check", json=CHECK, headers=seeded.auth("approval"))
    assert made.status_code == 200, made.text
    _, spare = seeded.run(lambda store: store.create_key("备用系统", "测试部门", ["check"]))
    path = template.format(
        check_id=made.json()["check_id"],
        entry_id=seeded.entry_ids["restricted"],
        uscc=RESTRICTED,
        key_id=spare.split("_")[1],
    )

    def call(headers: dict[str, str]) -> int:
        return client.request(method, path, headers=headers, **kwargs).status_code

    without = {
        "no key": {},
        "unknown key": {"Authorization": "Bearer gw_AAAAAAAA_" + "x" * 43},
        "malformed key": {"X-API-Key": "not-a-key"},
    }
    for name, headers in without.items():
        status = call(headers)
        if allowed == PUBLIC:
            assert status == 200, (name, status)
        else:
            assert status == 401, (name, status)
    for who, scopes in KEYS.items():
        status = call(seeded.auth(who))
        if allowed == PUBLIC or scopes & allowed:
            assert status not in (401, 403), (who, status)
        else:
            assert status == 403, (who, status)


def test_a_caller_reads_only_its_own_checks_and_reports_reads_all(
    client: Client, seeded: Seeded
) -> None:
    mine = client.post("/v1/check", json=CHECK, headers=seeded.auth("approval")).json()
    path = f"/v1/checks/{mine['check_id']}"
    assert client.get(path, headers=seeded.auth("approval")).status_code == 200
    other = client.get(path, headers=seeded.auth("other"))
    assert other.status_code == 404  # not 403: another caller's check is not even named
    assert client.get(path, headers=seeded.auth("reports")).status_code == 200
    feedback = client.post(f"{path}/feedback", json={"measures": []}, headers=seeded.auth("other"))
    assert feedback.status_code == 404


@pytest.mark.parametrize(
    ("method", "template", "allowed"),
    [(m, p, a) for m, p, a, kw in MATRIX if "json" in kw and a not in (PUBLIC, ANY_KEY)],
    ids=[f"{m} {p}" for m, p, a, kw in MATRIX if "json" in kw and a not in (PUBLIC, ANY_KEY)],
)
def test_the_key_is_checked_before_the_body(
    client: Client, seeded: Seeded, method: str, template: str, allowed: set[str]
) -> None:
    path = template.format(check_id="0" * 32, entry_id="e", uscc=RESTRICTED, key_id="AAAAAAAA")
    outsider = next(who for who, scopes in KEYS.items() if not scopes & allowed)
    for content, media in ((b'{"uscc": [', "application/json"), (b"x=1", "text/plain")):
        anonymous = client.request(method, path, content=content, headers={"Content-Type": media})
        assert anonymous.status_code == 401, (media, anonymous.text)
        lacking = client.request(
            method, path, content=content, headers=seeded.auth(outsider) | {"Content-Type": media}
        )
        assert lacking.status_code == 403, (media, lacking.text)

"""The admin API for keys: create, list, revoke, rotate with overlap, expiry, per-key rate
limits; each change in the audit log with its before and after."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from litestar.testing import TestClient

from tests.fixtures import CLEAR, Seeded

Client = TestClient[Any]
#: The test app reloads keys every 0.2 s (see conftest); a change shows within this.
SETTLE = 0.6


def check_status(client: Client, key: str) -> int:
    response = client.get(
        "/v1/check",
        params={"uscc": CLEAR, "matter": "bidding"},
        headers={"Authorization": f"Bearer {key}"},
    )
    return response.status_code


def eventually(condition: Callable[[], bool], within: float = SETTLE) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def create(client: Client, seeded: Seeded, **fields: Any) -> dict[str, Any]:
    body = {"caller": "招投标平台", "department": "公共资源交易中心", "scopes": ["check"]}
    response = client.post("/v1/admin/keys", json=body | fields, headers=seeded.auth("admin"))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def test_a_key_created_through_the_api_works_and_is_shown_once(
    client: Client, seeded: Seeded
) -> None:
    created = create(client, seeded)
    assert created["key"].startswith(f"gw_{created['key_id']}_")
    assert created["scopes"] == ["check"]
    assert eventually(lambda: check_status(client, created["key"]) == 200)

    listing = client.get("/v1/admin/keys", headers=seeded.auth("admin"))
    assert listing.status_code == 200
    (row,) = [k for k in listing.json() if k["key_id"] == created["key_id"]]
    assert row["caller"] == "招投标平台"
    assert row["revoked_at"] is None
    assert created["key"] not in listing.text
    assert created["key"].split("_", 2)[2] not in listing.text


def test_a_revoked_key_fails_within_a_second(client: Client, seeded: Seeded) -> None:
    created = create(client, seeded)
    assert eventually(lambda: check_status(client, created["key"]) == 200)
    revoked = client.post(
        f"/v1/admin/keys/{created['key_id']}/revoke", headers=seeded.auth("admin")
    )
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"]
    started = time.monotonic()
    assert eventually(lambda: check_status(client, created["key"]) == 401, within=1.0)
    assert time.monotonic() - started < 1.0
    again = client.post(f"/v1/admin/keys/{created['key_id']}/revoke", headers=seeded.auth("admin"))
    assert again.status_code == 404


def test_rotation_keeps_the_old_key_for_the_overlap_then_only_the_new_one(
    client: Client, seeded: Seeded
) -> None:
    old = create(client, seeded, rate_per_second=500.0)
    rotated = client.post(
        f"/v1/admin/keys/{old['key_id']}/rotate",
        json={"overlap_seconds": 1},
        headers=seeded.auth("admin"),
    )
    assert rotated.status_code == 201, rotated.text
    new = rotated.json()
    assert new["replaces"] == old["key_id"]
    assert new["key"] != old["key"]
    assert (new["caller"], new["scopes"]) == (old["caller"], old["scopes"])
    assert eventually(lambda: check_status(client, new["key"]) == 200)
    assert check_status(client, old["key"]) == 200  # within the overlap: both work
    time.sleep(1.1)
    assert check_status(client, old["key"]) == 401
    assert check_status(client, new["key"]) == 200
    listing = {
        k["key_id"]: k for k in client.get("/v1/admin/keys", headers=seeded.auth("admin")).json()
    }
    assert listing[new["key_id"]]["rate_per_second"] == 500.0  # the limit goes with it
    assert listing[new["key_id"]]["replaces"] == old["key_id"]
    # An expired key cannot be rotated again.
    again = client.post(
        f"/v1/admin/keys/{old['key_id']}/rotate", json={}, headers=seeded.auth("admin")
    )
    assert again.status_code == 404


def test_an_expired_key_is_refused_saying_so(client: Client, seeded: Seeded) -> None:
    ends = datetime.now().astimezone() + timedelta(seconds=1)
    created = create(client, seeded, expires_at=ends.isoformat())
    assert eventually(lambda: check_status(client, created["key"]) == 200)
    time.sleep(max(0.0, (ends - datetime.now().astimezone()).total_seconds()) + 0.05)
    response = client.get(
        "/v1/check",
        params={"uscc": CLEAR, "matter": "bidding"},
        headers={"Authorization": f"Bearer {created['key']}"},
    )
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def test_a_key_over_its_rate_limit_gets_429_with_retry_after(
    client: Client, seeded: Seeded
) -> None:
    created = create(client, seeded, rate_per_second=1.0, burst=3)
    assert eventually(lambda: check_status(client, created["key"]) == 200)
    time.sleep(1.0)  # the bucket refills to its burst
    statuses = [check_status(client, created["key"]) for _ in range(5)]
    assert statuses[:3] == [200, 200, 200]
    assert statuses[3:] == [429, 429]
    response = client.get(
        "/v1/check",
        params={"uscc": CLEAR, "matter": "bidding"},
        headers={"Authorization": f"Bearer {created['key']}"},
    )
    assert response.status_code == 429
    assert response.headers["content-type"].startswith("application/problem+json")
    assert int(response.headers["retry-after"]) >= 1
    assert created["key_id"] in response.json()["detail"]
    # Other keys are not affected.
    assert check_status(client, seeded.keys["approval"]) == 200

    # Lifting the limit takes effect on the next reload.
    lifted = client.put(
        f"/v1/admin/keys/{created['key_id']}/limits",
        json={"rate_per_second": 1000.0},
        headers=seeded.auth("admin"),
    )
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["rate_per_second"] == 1000.0
    assert eventually(lambda: check_status(client, created["key"]) == 200, within=1.5)


def test_every_change_is_in_the_audit_log_with_before_and_after(
    client: Client, seeded: Seeded
) -> None:
    admin = seeded.auth("admin")
    created = create(client, seeded)
    key_id = created["key_id"]
    client.put(f"/v1/admin/keys/{key_id}/limits", json={"rate_per_second": 5.0}, headers=admin)
    rotated = client.post(f"/v1/admin/keys/{key_id}/rotate", json={}, headers=admin).json()
    client.post(f"/v1/admin/keys/{rotated['key_id']}/revoke", headers=admin)

    audit = client.get("/v1/admin/audit", params={"target": key_id}, headers=admin)
    assert audit.status_code == 200, audit.text
    lines = audit.json()["lines"]
    assert [line["action"] for line in lines] == ["key.create", "key.limits", "key.rotate"]
    create_line, limits_line, rotate_line = lines
    assert create_line["before"] is None
    assert create_line["after"]["caller"] == "招投标平台"
    assert "admin system" in create_line["actor"]  # who: the admin key's caller
    assert limits_line["before"]["rate_per_second"] is None
    assert limits_line["after"]["rate_per_second"] == 5.0
    assert rotate_line["before"]["expires_at"] is None
    assert rotate_line["after"]["expires_at"] is not None
    assert datetime.fromisoformat(rotate_line["at"]) <= datetime.now().astimezone()

    revokes = client.get("/v1/admin/audit", params={"action": "key.revoke"}, headers=admin)
    (revoke_line,) = revokes.json()["lines"]
    assert revoke_line["target"] == rotated["key_id"]
    assert revoke_line["before"]["revoked_at"] is None
    assert revoke_line["after"]["revoked_at"] is not None
    for line in [*lines, revoke_line]:  # no key or digest in the log
        assert created["key"] not in str(line)
        assert rotated["key"] not in str(line)

    # Paging: after_id gives what follows.
    first = client.get("/v1/admin/audit", params={"limit": 1}, headers=admin).json()
    rest = client.get(
        "/v1/admin/audit", params={"after_id": first["next_after_id"]}, headers=admin
    ).json()
    assert rest["lines"][0]["id"] > first["lines"][0]["id"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scopes": ["delete"]}, "scopes"),
        ({"scopes": []}, "scopes"),
        ({"caller": ""}, "caller"),
        ({"rate_per_second": 0}, "rate_per_second"),
        ({"expires_at": "2020-01-01T00:00:00+08:00"}, "expires_at"),
        ({"expires_at": "2099-01-01T00:00:00"}, "expires_at"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_a_bad_key_request_is_refused_naming_the_field_and_creates_nothing(
    client: Client, seeded: Seeded, body: dict[str, Any], field: str
) -> None:
    admin = seeded.auth("admin")
    before = client.get("/v1/admin/keys", headers=admin).json()
    fields = {"caller": "x", "department": "y", "scopes": ["check"]} | body
    response = client.post("/v1/admin/keys", json=fields, headers=admin)
    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in response.text
    assert client.get("/v1/admin/keys", headers=admin).json() == before


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"until": "0.5"}, "until"),
        ({"since": "2026-11-22T08:00:00"}, "since"),  # no offset
        ({"after_id": str(2**70)}, "after_id"),
        ({"limit": "0"}, "limit"),
    ],
)
def test_a_bad_audit_query_is_refused_naming_the_parameter(
    client: Client, seeded: Seeded, params: dict[str, str], field: str
) -> None:
    response = client.get("/v1/admin/audit", params=params, headers=seeded.auth("admin"))
    assert response.status_code in (400, 422), response.text
    assert field in response.text


def test_a_key_body_that_is_not_json_or_not_utf8_is_400_or_415(
    client: Client, seeded: Seeded
) -> None:
    admin = seeded.auth("admin")
    bad = client.post(
        "/v1/admin/keys",
        content=b'{"caller": "\xff", "department": "y", "scopes": ["check"]}',
        headers=admin | {"Content-Type": "application/json"},
    )
    assert bad.status_code == 400, bad.text
    text = client.post(
        "/v1/admin/keys", content=b"caller=x", headers=admin | {"Content-Type": "text/plain"}
    )
    assert text.status_code == 415, text.text
    assert all(k["caller"] != "x" for k in client.get("/v1/admin/keys", headers=admin).json())

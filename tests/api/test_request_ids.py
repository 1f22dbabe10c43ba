"""X-Request-ID on every answer: the caller's own when sane, else a new one each time."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient

from tests.fixtures import CLEAR, Seeded

Client = TestClient[Any]


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", "/v1/check", {"params": {"uscc": CLEAR, "matter": "bidding"}}),
        ("GET", "/v1/check", {"params": {"uscc": "123", "matter": "bidding"}}),  # 422
        ("POST", "/v1/check/batch", {"json": {"matter": "bidding", "uscc": [CLEAR]}}),
        ("GET", "/v1/catalog", {}),
        ("GET", "/healthz", {}),
        ("GET", "/v1/nowhere", {}),  # 404
    ],
)
def test_every_answer_carries_a_request_id(
    client: Client, seeded: Seeded, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    first = client.request(method, path, headers=seeded.auth(), **kwargs)
    second = client.request(method, path, headers=seeded.auth(), **kwargs)
    assert first.headers["x-request-id"]
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    echoed = client.request(
        method, path, headers=seeded.auth() | {"X-Request-ID": "counter-7.A_1"}, **kwargs
    )
    assert echoed.headers["x-request-id"] == "counter-7.A_1"
    for insane in (b"a" * 65, b"has space", "引号".encode()):
        headers: dict[str, Any] = seeded.auth() | {"X-Request-ID": insane}
        replaced = client.request(method, path, headers=headers, **kwargs)
        assert replaced.headers["x-request-id"].encode() not in (insane, b"")

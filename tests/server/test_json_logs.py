"""A served gateway logs one JSON object a line, with no query string or body in it."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.fixtures import RESTRICTED, Seeded
from tests.server.conftest import Server

pytestmark = pytest.mark.slow


def test_every_log_line_is_a_json_object(server_factory: type[Server], seeded: Seeded) -> None:
    server = server_factory(seeded.path, workers=1).start()
    answer = httpx.get(
        f"{server.url}/v1/check",
        params={"uscc": RESTRICTED, "matter": "bidding", "case_ref": "受理号 QS-77"},
        headers=seeded.auth(),
        timeout=5,
    )
    assert answer.status_code == 200
    server.stop()
    lines = [line for line in server.log.read_text(encoding="utf-8").splitlines() if line]
    assert len(lines) >= 3  # granian's start, the gateway ready, the stop
    for line in lines:
        record = json.loads(line)
        assert {"ts", "level", "logger", "msg", "pid"} <= set(record), line
    messages = " ".join(json.loads(line)["msg"] for line in lines)
    assert "gateway ready" in messages
    assert "QS-77" not in messages
    assert seeded.keys["approval"] not in messages

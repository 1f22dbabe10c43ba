"""Two gateway nodes sharing one PostgreSQL store (issue 9), as a multi-node deployment runs.

Each node is its own ``python -m gateway serve`` with ``GATEWAY_DB=postgresql://…`` and a
directory of its own (``GATEWAY_LOCAL_DIR``). A check made on one node takes its feedback
through the other; the loop report, asked of either node, counts the checks and feedback
of both; a list changed through one node is answered by the other within a second while
its poll interval is ten (so only PostgreSQL's LISTEN/NOTIFY, or the Redis stream when
the nodes share a Redis, can have carried it); and
both nodes leave their files in their own directory, none beside a database file.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from gateway.clock import CST
from loadtest.redis_server import RedisServer
from tests.fixtures import CLEAR, RESTRICTED, Seeded, entry
from tests.server.conftest import Server

pytestmark = pytest.mark.slow


@pytest.fixture(params=["postgresql", "postgresql+redis"])
def shared(request: pytest.FixtureRequest) -> dict[str, str]:
    """What the nodes share beside the database: nothing, or a real redis-server (list
    changes then travel on its stream, see docs/scale-out.md)."""
    if request.param == "postgresql":
        return {}
    redis: RedisServer = request.getfixturevalue("redis_server")
    return {"GATEWAY_REDIS_URL": redis.url}


def node(
    server_factory: type[Server], seeded: Seeded, tmp_path: Path, name: str, shared: dict[str, str]
) -> Server:
    local = tmp_path / name
    return server_factory(
        tmp_path / f"{name}.db",  # names the log only: the store is the URL
        GATEWAY_DB=str(seeded.path),
        GATEWAY_LOCAL_DIR=str(local),
        GATEWAY_POLL_INTERVAL="10",
        **shared,
    ).start()


def check(server: Server, seeded: Seeded, uscc: str, matter: str = "licensing") -> Any:
    answer = httpx.get(
        f"{server.url}/v1/check",
        params={"uscc": uscc, "matter": matter},
        headers=seeded.auth(),
        timeout=5,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def feedback_for(answer: Any, outcome: str) -> dict[str, Any]:
    """Feedback executing every measure the check said applies."""
    applied = [m["code"] for m in answer["measures"] if m["state"] == "apply"]
    return {
        "measures": [{"code": code, "executed": True} for code in applied],
        "outcome": outcome,
        "handled_by": "officer-17",
        "handled_at": datetime.now(CST).isoformat(timespec="seconds"),
    }


def post_feedback(server: Server, seeded: Seeded, check_id: str, body: Any) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/checks/{check_id}/feedback", json=body, headers=seeded.auth(), timeout=5
    )


def report(server: Server, seeded: Seeded) -> dict[str, Any]:
    today = datetime.now(CST).date().isoformat()
    answer = httpx.get(
        f"{server.url}/v1/reports/loop",
        params={"from": today, "to": today, "group_by": "caller"},
        headers=seeded.auth("reports"),
        timeout=5,
    )
    assert answer.status_code == 200, answer.text
    rows: dict[str, Any] = {r["key"]: r for r in answer.json()["rows"]}
    return rows["approval system（测试部门）"]


def test_a_check_on_one_node_takes_its_feedback_on_the_other_and_reports_count_both(
    server_factory: type[Server], pg_seeded: Seeded, tmp_path: Path, shared: dict[str, str]
) -> None:
    a = node(server_factory, pg_seeded, tmp_path, "node-a", shared)
    b = node(server_factory, pg_seeded, tmp_path, "node-b", shared)

    on_a = check(a, pg_seeded, RESTRICTED)
    on_b = check(b, pg_seeded, RESTRICTED)
    assert on_a["verdict"] == on_b["verdict"] == "restricted"
    clear = check(b, pg_seeded, CLEAR)

    # feedback through the node that did not make the check
    sent = feedback_for(on_a, "不予受理")
    first = post_feedback(b, pg_seeded, on_a["check_id"], sent)
    assert first.status_code == 201, first.text
    # the same feedback again, through the first node: already recorded, same answer
    again = post_feedback(a, pg_seeded, on_a["check_id"], sent)
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    other = post_feedback(a, pg_seeded, on_b["check_id"], feedback_for(on_b, "不予受理"))
    assert other.status_code == 201, other.text
    shown = httpx.get(
        f"{a.url}/v1/checks/{on_a['check_id']}", headers=pg_seeded.auth(), timeout=5
    ).json()
    assert shown["feedback"]["outcome"] == "不予受理"
    assert shown["verdict"] == "restricted"

    applied = sum(m["state"] == "apply" for m in on_a["measures"]) * 2
    for server in (a, b):
        row = report(server, pg_seeded)
        assert row["checks"] == 3, row  # two on one node, one on the other
        assert row["feedback_received"] == 2
        assert row["executed"] == applied
        assert row["feedback_pending"] == 0
    assert clear["verdict"] == "clear"


def test_a_list_changed_through_one_node_is_answered_by_the_other_within_a_second(
    server_factory: type[Server], pg_seeded: Seeded, tmp_path: Path, shared: dict[str, str]
) -> None:
    a = node(server_factory, pg_seeded, tmp_path, "node-a", shared)
    b = node(server_factory, pg_seeded, tmp_path, "node-b", shared)
    code = CLEAR
    assert check(b, pg_seeded, code)["verdict"] == "clear"
    today = datetime.now(CST).date()
    row = msgspec.to_builtins(
        entry(code, "court_defaulter", "two-nodes-1", listed_on=today - timedelta(days=1))
    )
    changed = httpx.post(
        f"{a.url}/v1/lists/entries", json=[row], headers=pg_seeded.auth("lists"), timeout=10
    )
    assert changed.status_code == 200, changed.text
    started = time.monotonic()
    while check(b, pg_seeded, code)["verdict"] != "restricted":
        assert time.monotonic() - started < 1.0, "the other node polls (10 s): not woken"
        time.sleep(0.02)

    # each node's files are in its own directory, none in a directory named after the URL
    for server, name in ((a, "node-a"), (b, "node-b")):
        assert list((tmp_path / name / "metrics" / str(server.port)).glob("*.db"))
    assert not Path("postgresql:").exists()

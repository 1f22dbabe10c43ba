"""deploy/: the Prometheus configuration and alert rules pass promtool, the alerts fire as
their unit tests say, and the Grafana dashboard's queries are valid PromQL over metrics the
gateway exports. promtool comes from Debian's prometheus package (``make test`` installs
it where it is missing)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from gateway.app import create_app
from gateway.settings import Settings
from tests.fixtures import CLEAR, RESTRICTED, Seeded

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "gateway-dashboard.json"
METRIC = re.compile(r"\b(gateway_[a-z_]+?)(?:_bucket|_count|_sum)?\b")
REQUIRED_PANELS = {
    "Checks per second by verdict",
    "Check latency (server side)",
    "Verdict mix",
    "Snapshot age per worker",
    "Change-log lag per worker",
    "Recorder queue depth per worker",
    "Recorder flush time and batch size",
}


def promtool(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: `make test` installs Debian's prometheus package"
    return subprocess.run(
        [tool, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def test_the_prometheus_configuration_and_rules_pass_promtool() -> None:
    checked = promtool("check", "config", "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout + checked.stderr


def test_each_alert_fires_on_what_should_fire_it_and_only_then() -> None:
    tested = promtool("test", "rules", "rules_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout + tested.stderr


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    queries = dashboard_queries()
    assert {title for title, _ in queries} >= REQUIRED_PANELS
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {
                        "record": f"dashboard:query_{n}",
                        "expr": expr.replace("$__rate_interval", "1m").replace("$__range", "1h"),
                    }
                    for n, (_, expr) in enumerate(queries)
                ],
            }
        ]
    }
    (tmp_path / "dashboard_rules.yml").write_text(json.dumps(rules), encoding="utf-8")
    checked = promtool("check", "rules", "dashboard_rules.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_dashboards_and_rules_read_only_metrics_the_gateway_exports(seeded: Seeded) -> None:
    with TestClient(create_app(Settings(db=str(seeded.path)))) as client:
        exported = exported_metrics(client, seeded)
    used = {name for _, expr in dashboard_queries() for name in METRIC.findall(expr)}
    rules = (PROMETHEUS / "rules.yml").read_text(encoding="utf-8")
    used |= set(METRIC.findall(rules))
    assert used
    assert used <= exported, used - exported


def exported_metrics(client: TestClient[Any], seeded: Seeded) -> set[str]:
    """The gateway's metric names once it has answered checks, a refusal and a batch."""
    for uscc in (RESTRICTED, CLEAR, "not-a-code"):
        client.get("/v1/check", params={"uscc": uscc, "matter": "bidding"}, headers=seeded.auth())
    client.post(
        "/v1/check/batch", json={"matter": "bidding", "uscc": [CLEAR]}, headers=seeded.auth()
    )
    return set(METRIC.findall(client.get("/metrics").text))


@pytest.mark.parametrize("path", sorted(p.name for p in PROMETHEUS.glob("*.yml")))
def test_the_yaml_files_are_plain_and_commented(path: str) -> None:
    text = (PROMETHEUS / path).read_text(encoding="utf-8")
    assert text.startswith("#"), "each file says what it is for"
    assert "\t" not in text

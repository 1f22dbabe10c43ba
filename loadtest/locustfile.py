"""Locust users for the gateway's real callers (docs/performance.md, "Locust").

The user classes, the environment they read and Locust's event hooks; the hooks have
``loadtest/locust_verdict.py`` summarise and judge the run (the summary, Locust's exit code).

``python -m loadtest.run_locust`` builds a population, starts a gateway and runs this file
headless; by hand, against a running gateway::

    export LOCUST_CODES=var/loadtest/codes.txt LOCUST_KEY=<key>
    export LOCUST_GATEWAY_DB=var/loadtest/gateway.db   # for the server-side p99
    .venv/bin/locust -f loadtest/locustfile.py --headless -u 50 -r 10 -t 30s \\
        --host http://127.0.0.1:8000

Environment, read at import:

- ``LOCUST_CODES`` (required): codes file, one USCC a line (``codes.txt`` of
  ``python -m loadtest.datagen``); ``LOCUST_KEY`` (required): a key with scopes
  ``check,feedback``. Either missing stops Locust at once with a message.
- ``LOCUST_REPORTS_KEY``: a key with scope ``reports``, for the credit offices (without it
  they are left out).
- ``WEIGHT_APPROVAL`` (8), ``WEIGHT_PROCUREMENT`` (1), ``WEIGHT_OPS`` (1),
  ``WEIGHT_CREDIT_OFFICE`` (1): the user classes' weights, whole numbers; 0 leaves a class
  out. Locust's own way, class names at the end of the command line
  (``... ApprovalSystem Ops``), picks a subset too.
- ``LOCUST_MAX_FAIL_RATIO`` (0.01) and ``LOCUST_MAX_P99_MS`` (5): the pass/fail thresholds
  that set Locust's exit code. The p99 is the SERVER's: Locust rounds response times to whole
  milliseconds, so the p99 of the single checks' ``Server-Timing: app;dur=<ms>`` (the
  gateway's own time for the request, the wait for the durable record included) is compared.
  With ``LOCUST_GATEWAY_DB`` (the gateway's SQLite file) the ``latency_us`` the gateway
  recorded for every check of the run (its time up to the answer, before the record is
  durable) is read back too, and every check answered must have been recorded. In a
  distributed run the master sees no ``Server-Timing`` of its own: the p99 is then not
  checked (and the summary says so).
- ``LOCUST_SUMMARY_JSON``: also write the summary there.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlencode

from locust import FastHttpUser, between, constant_pacing, events, task
from locust.runners import WorkerRunner

# ``locust -f .../loadtest/locustfile.py`` from any directory: the repository on the path
if (_REPO := str(Path(__file__).resolve().parents[1])) not in sys.path:
    sys.path.insert(0, _REPO)

from loadtest.locust_verdict import (  # after the path above
    Criteria,
    evaluate,
    format_summary,
    server_timing_ms,
    write_final_csv,
)

CST = timezone(timedelta(hours=8))


def _fail_fast(message: str) -> NoReturn:
    """Stop Locust while it loads this file, with ``message`` and exit code 1."""
    sys.exit(f"loadtest/locustfile.py: {message}")


def _required(name: str, what: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        _fail_fast(f"{name} is not set: {what}")
    return value


def _load_codes(path: str) -> list[str]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        _fail_fast(f"LOCUST_CODES={path}: cannot read it ({exc.strerror})")
    codes = [line.strip() for line in text.splitlines() if line.strip()]
    if len(codes) < 20:
        _fail_fast(f"LOCUST_CODES={path}: {len(codes)} codes; at least 20 are needed")
    return codes


def _number(name: str, default: float, kind: type[float] | type[int] = float) -> Any:
    raw = os.environ.get(name, "").strip()
    try:
        value = kind(raw) if raw else default
    except ValueError:
        value = -1
    if value < 0:
        what = "a whole number" if kind is int else "a number"
        _fail_fast(f"{name} must be {what} >= 0, got {raw!r}")
    return value


CODES = _load_codes(
    _required("LOCUST_CODES", "the codes file, one USCC a line (python -m loadtest.datagen)")
)
KEY = _required(
    "LOCUST_KEY", "an API key with scopes check,feedback (python -m gateway keys create)"
)
AUTH = {"Authorization": f"Bearer {KEY}"}
REPORTS_KEY = os.environ.get("LOCUST_REPORTS_KEY", "").strip()
REPORTS_AUTH = {"Authorization": f"Bearer {REPORTS_KEY}"}
WEIGHTS = {
    "approval": _number("WEIGHT_APPROVAL", 8, int),
    "procurement": _number("WEIGHT_PROCUREMENT", 1, int),
    "ops": _number("WEIGHT_OPS", 1, int),
    "credit_office": _number("WEIGHT_CREDIT_OFFICE", 1, int) if REPORTS_KEY else 0,
}
if not any(WEIGHTS.values()):
    _fail_fast("every user class has weight 0")
MAX_FAIL_RATIO = _number("LOCUST_MAX_FAIL_RATIO", 0.01)
MAX_P99_MS = _number("LOCUST_MAX_P99_MS", 5.0)
GATEWAY_DB = os.environ.get("LOCUST_GATEWAY_DB", "").strip()
SUMMARY_JSON = os.environ.get("LOCUST_SUMMARY_JSON", "").strip()

#: Request names, as in Locust's statistics (with the method: GET / POST).
CHECK, BATCH = "/v1/check", "/v1/check/batch"
FEEDBACK = "/v1/checks/{check_id}/feedback"
VERDICTS = {"restricted", "attention", "incentive", "clear"}
#: What an approval system handles: mostly licences (行政许可), other matters now and then.
APPROVAL_MATTERS = {
    "licensing": 70,
    "public_service": 8,
    "subsidy": 8,
    "honours": 5,
    "land_resources": 5,
    "inspection": 4,
}
#: Share of applied measures reported as not executed (each with a reason).
NOT_EXECUTED_SHARE = 0.1
NOT_EXECUTED_REASONS = (
    "申请人主动撤回申请",
    "经核实失信信息已修复，正在办理信用修复公示",
    "同一事项已由上级部门依法处理",
    "申请材料不全，本次未进入实质审查",
)


def _fail(response: Any, message: str) -> None:
    response.failure(f"{message}: {response.status_code} {(response.text or '')[:200]}")


def _json(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


class ApprovalSystem(FastHttpUser):
    """省政务服务网审批系统: one check for every matter handled (GET or POST ``/v1/check``),
    then, when ``feedback_required``, the feedback (反馈) on every applied measure."""

    weight = WEIGHTS["approval"]
    abstract = not weight
    wait_time = between(0.05, 0.25)
    default_headers = AUTH

    @task
    def handle_matter(self) -> None:
        check = self.check(random.choice(CODES))
        if check is not None and check["feedback_required"]:
            self.feedback(check)

    def check(self, uscc: str) -> dict[str, Any] | None:
        """One check, half by GET, half by POST; the parsed answer if it is a sound one."""
        matter = random.choices(list(APPROVAL_MATTERS), list(APPROVAL_MATTERS.values()))[0]
        case_ref = f"SP{random.randrange(10**11):011d}"  # SPG… by GET, SPP… by POST
        if random.random() < 0.5:
            case_ref = case_ref.replace("SP", "SPG", 1)
            query = urlencode({"uscc": uscc, "matter": matter, "case_ref": case_ref})
            request = self.client.get(f"{CHECK}?{query}", name=CHECK, catch_response=True)
        else:
            case_ref = case_ref.replace("SP", "SPP", 1)
            body = {
                "uscc": uscc,
                "matter": matter,
                "matter_code": f"11{random.randrange(10**10):010d}",
                "case_ref": case_ref,
                "commitment": random.random() < 0.2,
            }
            request = self.client.post(CHECK, json=body, name=CHECK, catch_response=True)
        with request as response:
            answer = None
            if response.status_code == 200:
                _server_ms.append(server_timing_ms(response.headers.get("server-timing", "")))
                answer = _json(response)
            if not isinstance(answer, dict):
                _fail(response, "check not answered")
                return None
            applied = any(m.get("state") == "apply" for m in answer.get("measures", []))
            if answer.get("uscc") != uscc or answer.get("verdict") not in VERDICTS:
                _fail(response, f"check of {uscc} answered for another code or verdict")
            elif not answer.get("check_id") or answer.get("feedback_required") is not applied:
                _fail(response, "check without check_id, or feedback_required wrong")
            else:
                response.success()
                return answer
        return None

    def feedback(self, check: dict[str, Any]) -> None:
        """Report every measure in state ``apply``; a few not executed, with a reason."""
        measures: list[dict[str, Any]] = []
        for measure in check["measures"]:
            if measure["state"] != "apply":
                continue
            if random.random() < NOT_EXECUTED_SHARE:
                reason = random.choice(NOT_EXECUTED_REASONS)
                measures.append({"code": measure["code"], "executed": False, "reason": reason})
            else:
                measures.append({"code": measure["code"], "executed": True})
        body = {
            "measures": measures,
            "outcome": "不予受理" if check["verdict"] == "restricted" else "已受理",
            "handled_by": f"clerk-{random.randint(1, 300):03d}",
            "handled_at": datetime.now(CST).isoformat(timespec="seconds"),
        }
        url = f"/v1/checks/{check['check_id']}/feedback"
        with self.client.post(url, json=body, name=FEEDBACK, catch_response=True) as response:
            stored = _json(response) if response.status_code == 201 else None
            if not isinstance(stored, dict) or stored.get("check_id") != check["check_id"]:
                _fail(response, "feedback not stored")
            else:
                response.success()


class ProcurementPlatform(FastHttpUser):
    """公共资源交易平台: screens all the bidders of a tender at once, 20 to 300 codes,
    with ``POST /v1/check/batch`` (matter ``bidding`` or ``procurement``)."""

    weight = WEIGHTS["procurement"]
    abstract = not weight
    wait_time = between(0.5, 2.0)
    default_headers = AUTH

    @task
    def screen_bidders(self) -> None:
        codes = random.sample(CODES, min(len(CODES), random.randint(20, 300)))
        matter = random.choice(("bidding", "procurement"))
        body = {"matter": matter, "uscc": codes, "case_ref": f"ZB{random.randrange(10**9):09d}"}
        with self.client.post(BATCH, json=body, name=BATCH, catch_response=True) as response:
            answer = _json(response) if response.status_code == 200 else None
            results = answer.get("results") if isinstance(answer, dict) else None
            if not isinstance(results, list) or len(results) != len(codes):
                _fail(response, f"batch of {len(codes)} not answered in full")
            elif any(
                "error" in r or r.get("uscc") != c for r, c in zip(results, codes, strict=True)
            ):
                _fail(response, "a batch result is an error or out of order")
            else:
                response.success()


class Ops(FastHttpUser):
    """Monitoring: scrapes ``/readyz`` and ``/metrics`` (Prometheus text with the
    gateway's families) every 2 s, as Prometheus would."""

    weight = WEIGHTS["ops"]
    abstract = not weight
    wait_time = constant_pacing(2)

    @task
    def scrape(self) -> None:
        with self.client.get("/readyz", catch_response=True) as response:
            body = _json(response) if response.status_code == 200 else None
            if not isinstance(body, dict) or body.get("status") != "ready":
                _fail(response, "not ready")
            else:
                response.success()
        with self.client.get("/metrics", catch_response=True) as response:
            if response.status_code == 200 and "# TYPE gateway_" in (response.text or ""):
                response.success()
            else:
                _fail(response, "metrics")


#: What a credit office (信用办) groups the loop report by, and how often.
REPORT_GROUPS = {"authority": 4, "caller": 3, "list_type": 2, "measure": 1}


class CreditOffice(FastHttpUser):
    """信用办: reads the loop report (``GET /v1/reports/loop``) of the last 30 days, by
    authority, caller, list type or measure, as JSON or CSV, every 5 s. Needs
    ``LOCUST_REPORTS_KEY`` (scope ``reports``)."""

    weight = WEIGHTS["credit_office"]
    abstract = not weight
    wait_time = constant_pacing(5)

    @task
    def loop_report(self) -> None:
        today = datetime.now(timezone(timedelta(hours=8))).date()
        group_by = random.choices(list(REPORT_GROUPS), list(REPORT_GROUPS.values()))[0]
        as_csv = random.random() < 0.3
        params = {
            "from": (today - timedelta(days=29)).isoformat(),
            "to": today.isoformat(),
            "group_by": group_by,
            **({"format": "csv"} if as_csv else {}),
        }
        with self.client.get(
            f"/v1/reports/loop?{urlencode(params)}",
            headers=REPORTS_AUTH,
            name="/v1/reports/loop",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                _fail(response, "report")
            elif as_csv:
                header = (response.text or "").split("\r\n", 1)[0]
                if header.split(",")[:2] != [group_by, "checks"]:
                    _fail(response, "report CSV header")
                else:
                    response.success()
            else:
                body = _json(response)
                if not isinstance(body, dict) or not isinstance(body.get("rows"), list):
                    _fail(response, "report body")
                else:
                    response.success()


# --- the run's verdict (loadtest/locust_verdict.py) ---------------------------------------

_run: dict[str, float] = {}


#: ``Server-Timing`` of every single check answered 200 in this process, in ms.
_server_ms: list[float] = []


def _on_test_start(environment: Any, **_: Any) -> None:
    _run["started"] = time.time()
    _server_ms.clear()


def _on_quitting(environment: Any, **_: Any) -> None:
    """Set Locust's exit code from the thresholds (the master or the local runner only)."""
    if isinstance(environment.runner, WorkerRunner):
        return
    write_final_csv(environment)
    criteria = Criteria(MAX_FAIL_RATIO, MAX_P99_MS, GATEWAY_DB, check_name=CHECK)
    summary = evaluate(environment, _run.get("started", time.time()), _server_ms, criteria)
    summary["text"] = format_summary(summary)
    print(summary["text"], flush=True)
    if SUMMARY_JSON:
        Path(SUMMARY_JSON).write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    environment.process_exit_code = 0 if summary["passed"] else 1


_hooks: Any = events  # Locust's EventHook.add_listener is untyped
_hooks.test_start.add_listener(_on_test_start)
_hooks.quitting.add_listener(_on_quitting)

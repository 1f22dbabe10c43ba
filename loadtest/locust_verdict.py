"""The verdict of a Locust run of ``loadtest/locustfile.py`` (docs/performance.md, "Locust").

The summary per endpoint (``summarise``); the server side of the single checks: their
``Server-Timing`` (``server_timing_ms``) and, from the gateway's SQLite file, the
``latency_us`` it recorded for the checks of the run (``server_latencies``); the thresholds
that pass or fail the run and so set Locust's exit code (``evaluate``); the summary as text
(``format_summary``); Locust's CSV files with the final figures (``write_final_csv``).

No state of its own and no environment read here: the locustfile reads the thresholds
(``Criteria``), collects the single checks' ``Server-Timing`` as its users go and calls these
from its ``test_start`` and ``quitting`` hooks. Locust itself is imported only in
``write_final_csv``: importing it monkey-patches the whole process with gevent, and the
tests import this module.
"""

from __future__ import annotations

import csv
import math
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Criteria:
    """What a run is judged by: the locustfile's settings (its environment)."""

    #: ``LOCUST_MAX_FAIL_RATIO``: the highest failure ratio that passes.
    max_fail_ratio: float
    #: ``LOCUST_MAX_P99_MS``: the highest server p99 (``Server-Timing``) of the single checks.
    max_p99_ms: float
    #: ``LOCUST_GATEWAY_DB``: the gateway's SQLite file, to read ``latency_us`` back; "": none.
    gateway_db: str
    #: Locust's request name of the single checks (GET and POST ``/v1/check``).
    check_name: str


def server_timing_ms(header: str) -> float:
    """The ``dur`` of ``Server-Timing`` (``app;dur=1.25`` → 1.25); NaN without one, which
    is counted, sorts last and fails the p99.

    >>> server_timing_ms("app;dur=1.25")
    1.25
    >>> server_timing_ms("app")
    nan
    """
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == "dur":
            return float(value)
    return math.nan


def uuid7_prefix(seconds: float) -> str:
    """The first 13 characters of the UUIDv7 strings of time ``seconds`` (``xxxxxxxx-xxxx``:
    the Unix time in ms, 12 hex digits): check ids of a time range compare as strings.

    >>> uuid7_prefix(1_764_000_000.5)
    '019ab697-e9f4'
    """
    h = f"{int(seconds * 1000):012x}"
    return f"{h[:8]}-{h[8:]}"


def percentile(sorted_values: list[Any], p: float) -> Any:
    """Nearest-rank percentile of an ascending list.

    >>> percentile(list(range(1, 101)), 0.99), percentile(list(range(1, 101)), 0.50)
    (99, 50)
    >>> percentile([7], 0.99)
    7
    """
    return sorted_values[max(0, math.ceil(p * len(sorted_values)) - 1)]


#: Server-side groups of checks: label → (what, predicate on (in a batch, case_ref)).
#: GET and POST are told apart by the ``case_ref`` prefix the locustfile's
#: ``ApprovalSystem`` sends (``SPG…`` and ``SPP…``).
SERVER_GROUPS: dict[str, tuple[str, Any]] = {
    "single": ("single checks", lambda batch, ref: not batch),
    "single_get": ("single checks by GET", lambda batch, ref: not batch and ref.startswith("SPG")),
    "single_post": (
        "single checks by POST",
        lambda batch, ref: not batch and ref.startswith("SPP"),
    ),
    "batch_item": ("checks in batches", lambda batch, ref: batch),
}


def server_latencies(db: str, since: float, until: float) -> dict[str, Any]:
    """p50/p99 (µs) of the ``latency_us`` the gateway recorded between ``since`` and ``until``:
    single checks (the threshold's), split by method (the ``case_ref`` prefix the locustfile
    sends), and the checks of batches apart (each timed on its own, within its batch)."""
    uri = f"file:{Path(db).resolve()}?mode=ro"
    with sqlite3.connect(uri, uri=True, timeout=10) as conn:
        rows = conn.execute(
            "SELECT latency_us, batch_id IS NOT NULL, coalesce(case_ref, '') FROM checks"
            " WHERE check_id >= ? AND check_id < ?",
            (uuid7_prefix(since), uuid7_prefix(until)),
        ).fetchall()
    out: dict[str, Any] = {}
    for label, (_, belongs) in SERVER_GROUPS.items():
        values = sorted(us for us, batch, ref in rows if belongs(batch, ref))
        if values:
            out[label] = {
                "checks": len(values),
                "p50_us": percentile(values, 0.50),
                "p99_us": percentile(values, 0.99),
                "max_us": values[-1],
            }
    return out


def summarise(environment: Any, started: float) -> dict[str, Any]:
    """Per endpoint and in total: requests, failures, requests/s, client p50/p99 (ms), for
    the run started at ``started`` (Unix time) and ending now."""
    seconds = max(time.time() - started, 1e-9)
    stats = environment.stats
    endpoints = []
    for entry in [*sorted(stats.entries.values(), key=lambda e: (e.name, e.method)), stats.total]:
        endpoints.append(
            {
                "method": entry.method or "",
                "name": entry.name,
                "requests": entry.num_requests,
                "failures": entry.num_failures,
                "rps": round(entry.num_requests / seconds, 1),
                "p50_ms": entry.get_response_time_percentile(0.5) or 0,
                "p99_ms": entry.get_response_time_percentile(0.99) or 0,
            }
        )
    return {"seconds": round(seconds, 1), "endpoints": endpoints, "started": started}


def evaluate(
    environment: Any, started: float, server_ms: list[float], criteria: Criteria
) -> dict[str, Any]:
    """The summary and the verdict; ``reasons`` lists every threshold breached.
    ``server_ms``: the ``Server-Timing`` (ms) of every single check answered 200."""
    summary = summarise(environment, started)
    total = environment.stats.total
    reasons: list[str] = []
    ratio = total.fail_ratio
    max_fail_ratio, max_p99_ms = criteria.max_fail_ratio, criteria.max_p99_ms
    if not total.num_requests:
        reasons.append("no requests were made")
    elif ratio > max_fail_ratio:
        reasons.append(f"failure ratio {ratio:.4f} > LOCUST_MAX_FAIL_RATIO {max_fail_ratio:g}")
    if environment.runner is not None and environment.runner.exceptions:
        reasons.append(f"{len(environment.runner.exceptions)} exception(s) in the users' code")
    timings = sorted(server_ms, key=lambda ms: math.inf if math.isnan(ms) else ms)
    timed: dict[str, Any] = {}
    if timings:
        timed = {"checks": len(timings), "p50_ms": percentile(timings, 0.50)}
        timed |= {"p99_ms": percentile(timings, 0.99), "max_ms": timings[-1]}
        if math.isnan(timed["p99_ms"]):
            reasons.append("single checks answered without a Server-Timing header")
        elif timed["p99_ms"] > max_p99_ms:
            reasons.append(
                f"server p99 {timed['p99_ms']:g} ms > LOCUST_MAX_P99_MS {max_p99_ms:g} ms"
            )
    server: dict[str, Any] = {}
    if gateway_db := criteria.gateway_db:
        try:
            server = server_latencies(gateway_db, summary["started"], time.time() + 1)
        except sqlite3.Error as exc:
            reasons.append(f"cannot read latency_us from LOCUST_GATEWAY_DB={gateway_db}: {exc}")
        answered = sum(
            e.num_requests - e.num_failures
            for e in environment.stats.entries.values()
            if e.name == criteria.check_name
        )
        recorded = server.get("single", {}).get("checks", 0)
        if recorded < answered:
            reasons.append(
                f"the gateway recorded {recorded} single checks during the run, but answered"
                f" {answered}: is LOCUST_GATEWAY_DB the database of the gateway under load?"
            )
    summary |= {"server_timing": timed, "server_latency": server}
    summary |= {"reasons": reasons, "passed": not reasons}
    summary["thresholds"] = {"max_fail_ratio": max_fail_ratio, "max_p99_ms": max_p99_ms}
    summary["thresholds"]["p99_checked"] = bool(timings)
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    lines = [f"locust summary: {summary['seconds']} s"]
    lines.append(f"{'':5}{'endpoint':32}{'requests':>9}{'fails':>7}{'req/s':>9}{'p50 ms':>8}")
    lines[-1] += f"{'p99 ms':>8}"
    for e in summary["endpoints"]:
        lines.append(
            f"{e['method']:5}{e['name']:32}{e['requests']:>9}{e['failures']:>7}"
            f"{e['rps']:>9.1f}{e['p50_ms']:>8.0f}{e['p99_ms']:>8.0f}"
        )
    if t := summary["server_timing"]:
        lines.append(
            f"server time (Server-Timing, durable record included), single checks: "
            f"{t['checks']} checks, p50 {t['p50_ms']:g} ms, p99 {t['p99_ms']:g} ms, "
            f"max {t['max_ms']:g} ms"
        )
    server = summary["server_latency"]
    for label, (what, _) in SERVER_GROUPS.items():
        if s := server.get(label):
            lines.append(
                f"server latency_us (to the answer, before the durable record), {what}: "
                f"{s['checks']} checks, p50 {s['p50_us']} µs, p99 {s['p99_us']} µs, "
                f"max {s['max_us']} µs"
            )
    t = summary["thresholds"]
    p99 = (
        f"server p99 <= {t['max_p99_ms']:g} ms"
        if t["p99_checked"]
        else ("server p99 NOT checked (no Server-Timing seen by this process)")
    )
    lines.append(f"thresholds: failure ratio <= {t['max_fail_ratio']:g}, {p99}")
    lines.append("PASSED" if summary["passed"] else "FAILED: " + "; ".join(summary["reasons"]))
    return "\n".join(lines)


def write_final_csv(environment: Any) -> None:
    """Locust rewrites its ``--csv`` files every second, so the last write may miss the last
    second of the run: write the final figures (Locust's own format) once the users stopped."""
    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    if not prefix:
        return
    # Here, not at the top: importing locust monkey-patches the process (see the docstring).
    from locust.stats import PERCENTILES_TO_REPORT, StatsCSV

    writer = StatsCSV(environment, PERCENTILES_TO_REPORT)
    for suffix, write in (
        ("_stats.csv", writer.requests_csv),
        ("_failures.csv", writer.failures_csv),
        ("_exceptions.csv", writer.exceptions_csv),
    ):
        with open(f"{prefix}{suffix}", "w", newline="", encoding="utf-8") as handle:
            write(csv.writer(handle))

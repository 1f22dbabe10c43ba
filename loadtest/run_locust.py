"""A whole, bounded, headless Locust run against a fresh gateway (``make loadtest``).

Builds a population (``loadtest.datagen``) in ``--out``, imports it into a fresh database
with ``python -m gateway import``, creates a key (caller ``locust``, scopes check,feedback),
starts ``python -m gateway serve`` on a free port of 127.0.0.1, waits for ``/readyz``, runs
``locust -f loadtest/locustfile.py --headless`` for ``--run-time``, always stops the server,
prints the summary and exits with Locust's exit code (0: every threshold held).
See docs/performance.md, "Locust".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from loadtest.harness import (
    REPO,
    BenchError,
    Server,
    create_key,
    load_population,
    remove_record_logs,
)

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
#: Files of a previous run in ``--out``, removed first (the directory itself is kept).
RUN_FILES = (
    "entries.csv",
    "codes.txt",
    "gateway.db",
    "gateway.db-wal",
    "gateway.db-shm",
    "gateway.log",
    "report.html",
    "summary.json",
    "locust_stats.csv",
    "locust_stats_history.csv",
    "locust_failures.csv",
    "locust_exceptions.csv",
)
#: Seconds Locust gets beyond ``--run-time`` to start and to write its reports.
LOCUST_GRACE = 90


def seconds(timespan: str) -> float:
    """Locust's ``-t`` (``30s``, ``2m``, ``1h30m``, or plain seconds) in seconds."""
    if re.fullmatch(r"\d+(\.\d+)?", timespan):
        return float(timespan)
    parts = re.fullmatch(r"(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s)?", timespan.strip())
    if not parts or not any(parts.groups()):
        raise argparse.ArgumentTypeError(f"not a time span: {timespan!r} (e.g. 30s, 2m, 1h30m)")
    h, m, s = (int(g or 0) for g in parts.groups())
    return h * 3600 + m * 60 + s


def run_time(value: str) -> str:
    """argparse type of ``--run-time``: a valid time span, kept as Locust reads it."""
    seconds(value)
    return value


def prepare(out: Path, opts: Any, env: dict[str, str]) -> tuple[Path, str, str]:
    """Population, database and keys; return the codes file, the callers' key and the
    credit offices' key (scope reports)."""
    _, codes, key = load_population(out, opts, env, "locust")
    return codes, key, create_key(env, "locust-credit-office", "reports")


def locust_env(
    opts: Any, out: Path, codes: Path, keys: tuple[str, str], db: Path
) -> dict[str, str]:
    env = {**os.environ, "LOCUST_CODES": str(codes), "LOCUST_KEY": keys[0]}
    env["LOCUST_REPORTS_KEY"] = keys[1]
    env |= {"LOCUST_GATEWAY_DB": str(db), "LOCUST_SUMMARY_JSON": str(out / "summary.json")}
    given = {
        "WEIGHT_APPROVAL": opts.weight_approval,
        "WEIGHT_PROCUREMENT": opts.weight_procurement,
        "WEIGHT_OPS": opts.weight_ops,
        "WEIGHT_CREDIT_OFFICE": opts.weight_credit_office,
        "LOCUST_MAX_FAIL_RATIO": opts.max_fail_ratio,
        "LOCUST_MAX_P99_MS": opts.max_p99_ms,
    }
    return env | {name: str(value) for name, value in given.items() if value is not None}


def run_locust(opts: Any, url: str, out: Path, env: dict[str, str]) -> int:
    """Locust, headless, in its own process group; killed if it overruns. Its exit code."""
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless"]
    cmd += ["-u", str(opts.users), "-r", f"{opts.spawn_rate:g}", "-t", opts.run_time]
    cmd += ["--host", url, "--csv", str(out / "locust"), "--html", str(out / "report.html")]
    cmd += ["--only-summary", *opts.locust_args]
    print("$ python", " ".join(cmd[1:]), flush=True)
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True)
    try:
        return proc.wait(timeout=seconds(opts.run_time) + LOCUST_GRACE)
    except subprocess.TimeoutExpired:
        print(f"locust still running {LOCUST_GRACE} s after its run time: killed", flush=True)
        return 124
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def show(out: Path, code: int) -> None:
    """The summary the locustfile wrote, the files, the exit code."""
    path = out / "summary.json"
    if path.exists():
        print("\n== summary ==\n" + json.loads(path.read_text(encoding="utf-8"))["text"])
    else:
        print(f"\nno summary: {path} was not written")
    print(f"files: {out / 'locust_stats.csv'}, {out / 'report.html'}, {path}")
    print(f"exit code {code}")


def main(argv: list[str] | None = None) -> int:
    formatter = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.run_locust", description=__doc__, formatter_class=formatter
    )
    add = parser.add_argument
    add("-u", "--users", type=int, default=50, help="Locust users")
    add("-r", "--spawn-rate", type=float, default=10, help="users started per second")
    add(
        "-t", "--run-time", type=run_time, default="30s", help="how long Locust runs (30s, 2m, ...)"
    )
    default = "locustfile's default, or the environment"
    add("--weight-approval", type=int, help=f"ApprovalSystem weight ({default})")
    add("--weight-procurement", type=int, help=f"ProcurementPlatform weight ({default})")
    add("--weight-ops", type=int, help=f"Ops weight ({default})")
    add("--weight-credit-office", type=int, help=f"CreditOffice weight ({default})")
    add("--max-fail-ratio", type=float, help=f"LOCUST_MAX_FAIL_RATIO ({default})")
    add("--max-p99-ms", type=float, help=f"LOCUST_MAX_P99_MS, server side ({default})")
    add("--subjects", type=int, default=100_000, help="population")
    add("--hit-ratio", type=float, default=0.1, help="share of the population listed")
    add("--codes", type=int, default=10_000, help="codes the callers query, half hits")
    add("--seed", type=int, default=7, help="seed of the generated data")
    add("--workers", type=int, default=1, help="granian workers of the gateway")
    add("--start-timeout", type=float, default=120, help="seconds for the gateway to be ready")
    add("--out", type=Path, default=REPO / "var" / "loadtest", help="output directory")
    add("locust_args", nargs="*", help="further Locust options, after --")
    opts = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the server on the way out
    out = opts.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    db = out / "gateway.db"
    remove_record_logs(db)  # the last run's: of the store it replaces
    env = {**os.environ, "GATEWAY_DB": str(db)}
    server = None
    try:
        codes, key, reports_key = prepare(out, opts, env)
        cmd = [sys.executable, "-m", "gateway", "serve", "--workers", str(opts.workers)]
        server = Server("gateway", cmd, REPO, env, out)
        server.wait_ready("/readyz", opts.start_timeout)
        print(f"gateway: {server.url} pid {server.proc.pid}, database {db}", flush=True)
        code = run_locust(
            opts, server.url, out, locust_env(opts, out, codes, (key, reports_key), db)
        )
    except BenchError as exc:
        print(f"loadtest failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: gateway and Locust stopped", file=sys.stderr)
        return 130
    finally:
        if server is not None:
            server.stop()
    show(out, code)
    return code


if __name__ == "__main__":
    raise SystemExit(main())

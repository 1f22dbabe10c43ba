"""The pieces every benchmark and the Locust runner share (``make bench``, ``make bench-scale``,
``make bench-redis``, ``make loadtest``).

Servers on free ports of 127.0.0.1, each in its own process group (:class:`Server`, probed
with :func:`fetch`); wrk, and what is read off its output (:func:`ensure_wrk`,
:func:`run_wrk`, :func:`parse_wrk`), then the wait for the servers to be quiet after a load
(:func:`settle`); the gateway's CLI for a run's data and key (:func:`gateway_cli`,
:func:`create_key`, :func:`load_population`, :func:`remove_record_logs`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from loadtest import datagen
from loadtest.bench_summary import Run
from loadtest.procs import group_cpu_seconds, group_rss_kb, loop_busy, main_threads_cpu, wait_quiet

REPO = Path(__file__).resolve().parents[1]
LUA = Path(__file__).with_name("wrk_codes.lua")
HOST = "127.0.0.1"
#: What is read off wrk's output (latencies in ms)
WRK = {"rps": r"^Requests/sec:\s+([\d.]+)", "requests": r"^\s+(\d+) requests in"}
WRK |= {f"p{p}_ms": rf"^\s+{p}%\s+([\d.]+[a-z]+)\s*$" for p in (50, 99)}
UNITS = {"": 1.0, "us": 0.001, "ms": 1.0, "s": 1e3, "m": 6e4}


class BenchError(RuntimeError):
    pass


def ensure_wrk() -> str:
    if not shutil.which("wrk"):
        print("wrk is missing: installing Debian's package wrk (apt-get update, apt-get install)")
        for cmd in ("apt-get update", "apt-get install -y wrk"):
            subprocess.run(cmd.split(), check=True, timeout=900)
    return shutil.which("wrk") or "wrk"


def fetch(url: str, key: str = "", body: bytes | None = None) -> tuple[int, bytes]:
    """GET, or POST a JSON ``body``; the status and the body of the response."""
    headers = {"Content-Type": "application/json"} if body else {}
    headers |= {"Authorization": f"Bearer {key}"} if key else {}
    try:
        with urlopen(Request(url, data=body, headers=headers), timeout=60 if body else 5) as resp:
            return resp.status, resp.read()
    except HTTPError as exc:
        return exc.code, exc.read()


class Server:
    """A server on a free port in its own process group, logging to ``<run>/<name>.log``."""

    def __init__(self, name: str, cmd: list[str], cwd: Path, env: dict[str, str], run: Path):
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            port = str(sock.getsockname()[1])
        self.name, self.log, self.url = name, run / f"{name}.log", f"http://{HOST}:{port}"
        with self.log.open("wb") as log:
            cmd = [*cmd, "--host", HOST, "--port", port]
            self.proc = subprocess.Popen(
                cmd, cwd=cwd, env=env, stdout=log, stderr=log, start_new_session=True
            )

    def failed(self, what: str) -> BenchError:
        lines = self.log.read_text(errors="replace").splitlines()[-30:]
        return BenchError(f"{self.name}: {what}; its log {self.log} ends:\n" + "\n".join(lines))

    def wait_ready(self, path: str, timeout: float) -> None:
        for _ in range(int(timeout / 0.2)):  # a little longer: each probe takes time too
            if self.proc.poll() is not None:
                raise self.failed(f"exited with {self.proc.returncode} before it was ready")
            with contextlib.suppress(URLError, OSError):
                if fetch(self.url + path)[0] == 200:
                    return
            time.sleep(0.2)
        raise self.failed(f"GET {path} not 200 after {timeout:g} s")

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def parse_wrk(out: str) -> Run:
    """Requests/s, p50 and p99 (ms), requests, non-2xx responses and socket errors."""
    found = {k: m[1] for k, p in WRK.items() if (m := re.search(p, out, re.M))}
    if len(found) < len(WRK):
        raise BenchError(f"cannot read wrk's output:\n{out}")
    res = {k: float(v.rstrip("usm")) * UNITS[v.lstrip("0123456789.")] for k, v in found.items()}
    errors = re.search(r"Socket errors: (.*)", out)
    res["socket_errors"] = sum(map(int, re.findall(r"\d+", errors[1]))) if errors else 0
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return res | {"non_2xx": int(non2xx[1]) if non2xx else 0}


def run_wrk(
    wrk: str, server: Server, codes: Path, key: str, opts: Any, secs: float, delay_ms: float = 0
) -> Run:
    """One wrk run; the server tree's RSS is sampled meanwhile (peak in ``rss_kb``), the CPU
    it used is counted (``cpu_s``), and the share of the run its workers' event loops were
    on a CPU (``loop_busy``: see ``loadtest.procs.loop_busy``).
    ``delay_ms``: each connection pauses that long before each request (a paced load)."""
    cmd = [wrk, "-t1", f"-c{opts.connections}", f"-d{secs:g}s", "--latency", "-s", str(LUA)]
    cmd += [server.url, "--", str(codes)]
    env, peak, deadline = {**os.environ, "BENCH_KEY": key}, 0, time.monotonic() + secs + 60
    if delay_ms:
        env["BENCH_DELAY_MS"] = f"{delay_ms:.3f}"
    cpu, loops = group_cpu_seconds([server.proc.pid]), main_threads_cpu(server.proc.pid)
    with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) as proc:
        while proc.poll() is None and time.monotonic() < deadline:
            peak = max(peak, group_rss_kb(server.proc.pid))
            time.sleep(0.5)
        proc.kill()  # a no-op when wrk has finished
        out = proc.stdout.read() if proc.stdout else ""
    # Over wrk's own duration: the loop's CPU after the load (until read, < 0.5 s) is nil.
    busy = loop_busy(loops, main_threads_cpu(server.proc.pid), opts.workers, secs)
    cpu = group_cpu_seconds([server.proc.pid]) - cpu
    if proc.wait():
        raise BenchError(f"wrk exited with {proc.returncode} on {server.name}:\n{out}")
    return parse_wrk(out) | {"rss_kb": peak, "cpu_s": round(cpu, 2), "loop_busy": busy}


def settle(servers: dict[str, tuple[Server, Path, str]], res: Run | None = None) -> None:
    """Wait until no server works on after its load (the gateway's upkeep: see
    ``loadtest.procs``), so that it does not slow the next run; into ``res``, how long that
    took and the CPU it used (``after_s``, ``after_cpu_s``)."""
    waited, cpu = wait_quiet(server.proc.pid for server, *_ in servers.values())
    if res is not None:
        res |= {"after_s": round(waited, 1), "after_cpu_s": round(cpu, 2)}


def gateway_cli(args: list[str], env: dict[str, str], timeout: float) -> str:
    """``python -m gateway <args>``; return the last line of its output."""
    cmd = [sys.executable, "-m", "gateway", *args]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        out = f"{done.stdout[-2000:]}{done.stderr[-3000:]}"
        raise BenchError(f"python -m gateway {' '.join(args)} exited {done.returncode}:\n{out}")
    return (done.stdout.strip().splitlines() or [""])[-1].strip()


def remove_record_logs(db: Path) -> None:
    """Delete the record logs beside the SQLite file ``db`` (``<db>.records``, its lock, and
    any moved aside as another store's): a run's fresh database is another store, and a
    worker would move the old log aside again rather than recover it."""
    for records in db.parent.glob(f"{db.name}.records*"):
        if records.is_dir():
            shutil.rmtree(records)
        else:
            records.unlink()


def create_key(env: dict[str, str], caller: str, scopes: str) -> str:
    """``python -m gateway keys create`` for a load tool; the key printed alone."""
    who = ["--caller", caller, "--department", caller, "--scopes", scopes]
    key = gateway_cli(["keys", "create", *who], env, timeout=120)
    if not key or " " in key:
        raise BenchError(f"keys create: expected the key alone on the last line, got {key!r}")
    return key


def load_population(
    out: Path, opts: Any, env: dict[str, str], caller: str
) -> tuple[Path, Path, str]:
    """The ``loadtest.datagen`` population imported into ``GATEWAY_DB`` and a key with
    check and feedback scopes: the entries file, the codes file and the key."""
    entries, codes, n = datagen.write_all(out, opts.subjects, opts.hit_ratio, opts.codes, opts.seed)
    print(f"data: {opts.subjects} subjects, {n} listed; {opts.codes} codes to query, half hits")
    print("import:", gateway_cli(["import", str(entries)], env, timeout=900))
    return entries, codes, create_key(env, caller, "check,feedback")

"""``make bench``'s summary of its runs (``loadtest.bench``): medians of the rounds, ratios of
the medians and of each round's own runs, the CPU the apps used, the paced and batch runs;
and the table printed at the end."""

from __future__ import annotations

import os
import statistics
from datetime import datetime
from typing import Any

Run = dict[str, float]
STATS = ("rps", "p50_ms", "p99_ms")
ROW = "{:16} {:>9,.0f} {:>7.2f} {:>7.2f} {:>7}  {}"
HEADER = "app                  req/s  p50 ms  p99 ms  RSS MB  "
#: The ratios reported, where both apps ran: to the references, and the gateway to its
#: variants (what the durable record costs; what the record log gained over fsyncing SQLite's;
#: what holding checks behind their frames gained over inserting them each turn).
PAIRS = (
    ("gateway", "floor"),
    ("gateway", "limit"),
    ("limit", "floor"),
    ("gateway-unsynced", "floor"),
    ("gateway", "gateway-unsynced"),
    ("gateway", "gateway-walsync"),
    ("gateway", "gateway-eager"),
    ("gateway-eager", "floor"),
)


def summarise(
    opts: Any, rounds: dict[str, list[Run]], batch: list[tuple[float, float]]
) -> dict[str, Any]:
    apps: dict[str, dict[str, Any]] = {}
    for app, rs in rounds.items():
        apps[app] = {f: round(statistics.median(r[f] for r in rs), 3) for f in STATS}
        apps[app] |= {"peak_rss_mb": max(r["rss_kb"] for r in rs) // 1024, "rounds": rs}
        if all("cpu_s" in r for r in rs):
            during = statistics.median(1e6 * r["cpu_s"] / r["requests"] for r in rs)
            apps[app]["cpu_us_per_request"] = round(during, 1)
        if all("loop_busy" in r for r in rs):
            apps[app]["loop_busy"] = round(statistics.median(r["loop_busy"] for r in rs), 3)
            # the loops' CPU seconds: their share of each run, times the loops and its length
            loop_s = opts.workers * opts.duration
            in_loops = statistics.median(1e6 * r["loop_busy"] * loop_s / r["requests"] for r in rs)
            apps[app]["loop_cpu_us_per_request"] = round(in_loops, 1)
        if all("after_cpu_s" in r for r in rs):
            apps[app]["after_cpu_s"] = round(statistics.median(r["after_cpu_s"] for r in rs), 2)
            per_request = statistics.median(1e6 * r["after_cpu_s"] / r["requests"] for r in rs)
            apps[app]["after_cpu_us_per_request"] = round(per_request, 1)
    rps = {app: a["rps"] for app, a in apps.items()}
    ratios = {f"{a}/{b}": round(rps[a] / rps[b], 3) for a, b in PAIRS if {a, b} <= rps.keys()}
    # Each round's own ratio (the apps measured one after the other, seconds apart): on a
    # machine whose speed drifts between rounds, their median is the steadier figure.
    paired = {
        f"{a}/{b}": sorted(
            ra["rps"] / rb["rps"] for ra, rb in zip(rounds[a], rounds[b], strict=True)
        )
        for a, b in PAIRS
        if {a, b} <= rounds.keys()
    }
    round_ratios = {
        name: {
            "median": round(statistics.median(rs), 3),
            "min": round(rs[0], 3),
            "max": round(rs[-1], 3),
        }
        for name, rs in paired.items()
    }
    settings = {k: v for k, v in vars(opts).items() if k != "out"} | {"wrk": "-t1 --latency"}
    settings["gateway_env"] = {  # a Redis URL may carry a password
        k: ("<set>" if k in ("GATEWAY_REDIS_URL", "GATEWAY_DB") and "://" in v else v)
        for k, v in os.environ.items()
        if k.startswith("GATEWAY_")
    }
    result: dict[str, Any] = {"date": datetime.now().astimezone().isoformat(timespec="seconds")}
    result["machine"] = {"cpus": os.cpu_count(), "kernel": " ".join(os.uname()[2:])}
    result |= {"settings": settings, "apps": apps, "ratios": ratios, "round_ratios": round_ratios}
    if batch:
        wall, server = [w for w, _ in batch], [t for _, t in batch]
        p95 = statistics.quantiles(wall, n=20)[18] if len(wall) > 1 else wall[0]
        result["batch"] = {"codes": opts.batch_size, "calls": len(batch), "p95_ms": round(p95, 1)}
        result["batch"]["median_ms"] = round(statistics.median(wall), 1)
        result["batch"]["server_median_ms"] = round(statistics.median(server), 1)
    return result


def show(result: dict[str, Any]) -> None:
    s = result["settings"]
    print(f"\nmedians of {s['rounds']} rounds, {s['workers']} worker(s)\n{HEADER}req/s per round")
    for app, a in result["apps"].items():
        each = " ".join(f"{r['rps']:.0f}" for r in a["rounds"])
        print(ROW.format(app, a["rps"], a["p50_ms"], a["p99_ms"], a["peak_rss_mb"], each))
    during = [
        f"{app} {a['cpu_us_per_request']:.1f}"
        for app, a in result["apps"].items()
        if "cpu_us_per_request" in a
    ]
    if during:
        print(f"CPU a request during the measured runs (µs, median): {', '.join(during)}")
    in_loops = [
        f"{app} {a['loop_cpu_us_per_request']:.1f}"
        for app, a in result["apps"].items()
        if "loop_cpu_us_per_request" in a
    ]
    if in_loops:  # the rest: the server's I/O threads, and the gateway's recorder threads
        print(f"  of which in the event loops (µs, median): {', '.join(in_loops)}")
    busy = [f"{app} {a['loop_busy']:.0%}" for app, a in result["apps"].items() if "loop_busy" in a]
    if busy:
        print(f"event loops on a CPU, share of the measured runs (median): {', '.join(busy)}")
    working_on = [
        f"{app} {a['after_cpu_s']:.2f} s ({a['after_cpu_us_per_request']:.1f} µs a request)"
        for app, a in result["apps"].items()
        if "after_cpu_s" in a
    ]
    if working_on:
        line = ", ".join(working_on)
        print(f"CPU used after a measured run, until quiet (median; waited for): {line}")
    if result["ratios"]:  # none when one app alone was measured
        ratios = (f"{name} {ratio:.3f}" for name, ratio in result["ratios"].items())
        print("ratios:", ", ".join(ratios))
        each_round = (
            f"{name} {r['median']:.3f} ({r['min']:.3f}-{r['max']:.3f})"
            for name, r in result["round_ratios"].items()
        )
        print("ratios within each round, median (range):", ", ".join(each_round))
    if p := result.get("paced"):
        line = f"paced at {p['rps']:,.0f} req/s: p50 {p['p50_ms']} ms, p99 {p['p99_ms']} ms"
        others = [
            (k.removeprefix("paced_"), v) for k, v in result.items() if k.startswith("paced_")
        ]
        for app, f in sorted(others, key=lambda item: item[0] == "floor"):  # the floor last
            name = "the floor" if app == "floor" else app
            line += f"; {name}, same waits: {f['rps']:,.0f} req/s, "
            line += f"p50 {f['p50_ms']} ms, p99 {f['p99_ms']} ms"
        print(line)
    if b := result.get("batch"):
        print(f"batch check of {b['codes']} codes ({b['calls']} calls): ", end="")
        print(f"median {b['median_ms']} ms, p95 {b['p95_ms']} ms (wall); ", end="")
        print(f"server time median {b['server_median_ms']} ms")

"""``make bench``'s summary: the ratios of the medians, and each round's own ratio (the
apps measured seconds apart), whose median does not move when the machine's speed drifts
from one round to the next."""

from __future__ import annotations

from argparse import Namespace

import pytest

from loadtest import bench_summary, harness


def runs(*rps: float) -> list[dict[str, float]]:
    """wrk's figures of runs of 10 s at ``rps``."""
    return [
        {"rps": r, "requests": r * 10, "p50_ms": 1.0, "p99_ms": 2.0, "rss_kb": 1024.0} for r in rps
    ]


def test_each_round_is_compared_within_itself() -> None:
    opts = Namespace(rounds=3, workers=1, batch_size=1000, out="var/bench")
    # The machine halves its speed in round 2 and recovers: the gateway is 0.9 of the
    # floor in every round, but the medians pair round 1's floor with round 3's gateway.
    rounds = {"floor": runs(10_000, 5_000, 8_000), "gateway": runs(9_000, 4_500, 7_200)}
    result = bench_summary.summarise(opts, rounds, [])
    assert result["ratios"] == {"gateway/floor": 0.9}
    assert result["round_ratios"] == {"gateway/floor": {"median": 0.9, "min": 0.9, "max": 0.9}}
    rounds["gateway"] = runs(9_000, 6_000, 4_000)  # the drift hits the gateway's turns
    result = bench_summary.summarise(opts, rounds, [])
    assert result["ratios"] == {"gateway/floor": 0.75}  # 6,000 / 8,000
    assert result["round_ratios"] == {"gateway/floor": {"median": 0.9, "min": 0.5, "max": 1.2}}


def test_cpu_a_request_and_what_the_durable_record_costs() -> None:
    """The CPU each app used a request while loaded, and the gateway against itself
    without the log's fsync (``--unsynced``), round by round."""
    opts = Namespace(rounds=2, workers=1, batch_size=1000, out="var/bench")

    def loaded(rps: float, cpu_s: float) -> dict[str, float]:
        return runs(rps)[0] | {"requests": rps * 10, "cpu_s": cpu_s}

    rounds = {
        "floor": [loaded(16_000, 16.0), loaded(12_000, 12.0)],  # 100 µs a request
        "gateway": [loaded(12_000, 15.6), loaded(9_000, 11.7)],  # 130
        "gateway-unsynced": [loaded(16_000, 17.6), loaded(10_000, 11.0)],  # 110
    }
    result = bench_summary.summarise(opts, rounds, [])
    cpu = {app: a["cpu_us_per_request"] for app, a in result["apps"].items()}
    assert cpu == {"floor": 100.0, "gateway": 130.0, "gateway-unsynced": 110.0}
    costs = result["round_ratios"]["gateway/gateway-unsynced"]
    assert costs == {"median": 0.825, "min": 0.75, "max": 0.9}
    assert result["round_ratios"]["gateway-unsynced/floor"]["min"] == 0.833
    assert "gateway/limit" not in result["ratios"]  # the limit did not run


def test_how_busy_the_event_loops_were(capsys: pytest.CaptureFixture[str]) -> None:
    """The share of each run the workers' event loops spent on a CPU, median of the rounds:
    a loop well below the others' waited (for the disk, or for requests)."""
    opts = Namespace(rounds=3, workers=1, duration=10, batch_size=1000, out="var/bench")

    def busy(*shares: float) -> list[dict[str, float]]:
        return [r | {"loop_busy": b} for r, b in zip(runs(1, 2, 3), shares, strict=True)]

    rounds = {"floor": busy(0.84, 0.9, 0.8), "gateway": busy(0.5, 0.45, 0.6)}
    result = bench_summary.summarise(opts, rounds, [])
    assert {app: a["loop_busy"] for app, a in result["apps"].items()} == {
        "floor": 0.84,
        "gateway": 0.5,
    }
    bench_summary.show(result)
    out = capsys.readouterr().out
    assert (
        "event loops on a CPU, share of the measured runs (median): floor 84%, gateway 50%" in out
    )


def test_the_event_loops_share_of_a_requests_cpu(capsys: pytest.CaptureFixture[str]) -> None:
    """Of the CPU a request, what the event loops took (the rest: the server's I/O threads,
    the gateway's recorder threads): a loop that costs more a request with fewer requests a
    turn shows a fixed cost a turn (docs/performance.md, session 16)."""
    opts = Namespace(rounds=2, workers=2, duration=10, batch_size=1000, out="var/bench")

    def loaded(rps: float, cpu_s: float, loop_busy: float) -> dict[str, float]:
        return runs(rps)[0] | {"cpu_s": cpu_s, "loop_busy": loop_busy}

    # two loops for 10 s: a share of 0.6 is 12 s of CPU
    rounds = {
        "floor": [loaded(15_000, 15.0, 0.6), loaded(10_000, 10.0, 0.4)],  # 100, 80 in loops
        "gateway": [loaded(10_000, 13.0, 0.425), loaded(12_000, 15.6, 0.51)],  # 130, 85
    }
    result = bench_summary.summarise(opts, rounds, [])
    in_loops = {app: a["loop_cpu_us_per_request"] for app, a in result["apps"].items()}
    assert in_loops == {"floor": 80.0, "gateway": 85.0}
    bench_summary.show(result)
    out = capsys.readouterr().out
    assert "CPU a request during the measured runs (µs, median): floor 100.0, gateway 130.0" in out
    assert "  of which in the event loops (µs, median): floor 80.0, gateway 85.0" in out


# wrk's report of a run with stalls: latencies of a second or more are printed in seconds,
# padded with a space to the column's width.
STALLED = """Running 10s test @ http://127.0.0.1:37345
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   112.57ms  322.39ms   1.62s    90.20%
    Req/Sec    10.02k     2.76k   14.00k    69.05%
  Latency Distribution
     50%  822.00us
     75%    4.14ms
     90%  409.18ms
     99%    1.49s\x20
  84496 requests in 10.01s, 69.70MB read
  Non-2xx or 3xx responses: 3
Requests/sec:   8444.01
Transfer/sec:      6.97MB
"""


def test_wrk_latencies_in_seconds_and_microseconds_are_read_in_ms() -> None:
    run = harness.parse_wrk(STALLED)
    assert run["p50_ms"] == pytest.approx(0.822)
    assert run["p99_ms"] == 1490.0
    assert (run["rps"], run["requests"], run["non_2xx"]) == (8444.01, 84496, 3)


def test_one_app_alone_prints_no_empty_ratio_lines(capsys: pytest.CaptureFixture[str]) -> None:
    opts = Namespace(rounds=2, workers=1, duration=10, batch_size=1000, out="var/bench")
    bench_summary.show(bench_summary.summarise(opts, {"gateway": runs(9_000, 11_000)}, []))
    out = capsys.readouterr().out
    assert "gateway" in out
    assert "ratios" not in out
    opts.rounds = 1
    bench_summary.show(bench_summary.summarise(opts, {"floor": runs(10), "gateway": runs(9)}, []))
    assert "ratios: gateway/floor 0.900" in capsys.readouterr().out

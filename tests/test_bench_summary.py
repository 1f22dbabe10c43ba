"""``make bench``'s summary: the ratios of the medians, and each round's own ratio (the
apps measured seconds apart), whose median does not move when the machine's speed drifts
from one round to the next."""

from __future__ import annotations

from argparse import Namespace

from loadtest import bench


def runs(*rps: float) -> list[dict[str, float]]:
    return [{"rps": r, "p50_ms": 1.0, "p99_ms": 2.0, "rss_kb": 1024.0} for r in rps]


def test_each_round_is_compared_within_itself() -> None:
    opts = Namespace(rounds=3, workers=1, batch_size=1000, out="var/bench")
    # The machine halves its speed in round 2 and recovers: the gateway is 0.9 of the
    # floor in every round, but the medians pair round 1's floor with round 3's gateway.
    rounds = {"floor": runs(10_000, 5_000, 8_000), "gateway": runs(9_000, 4_500, 7_200)}
    result = bench.summarise(opts, rounds, [])
    assert result["ratios"] == {"gateway/floor": 0.9}
    assert result["round_ratios"] == {"gateway/floor": {"median": 0.9, "min": 0.9, "max": 0.9}}
    rounds["gateway"] = runs(9_000, 6_000, 4_000)  # the drift hits the gateway's turns
    result = bench.summarise(opts, rounds, [])
    assert result["ratios"] == {"gateway/floor": 0.75}  # 6,000 / 8,000
    assert result["round_ratios"] == {"gateway/floor": {"median": 0.9, "min": 0.5, "max": 1.2}}

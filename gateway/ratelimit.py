"""Per-key rate limits: a token bucket per key in each worker. Pure (the caller gives
the time).

A key allowed ``rate`` requests a second with bursts of ``burst`` gets, in each of
``workers`` worker processes, a bucket of ``burst / workers`` tokens refilled at
``rate / workers`` a second: a load balanced over the workers (as the kernel does
for granian's) is held to the key's rate without any shared state on the hot path.
A request costs one token; an empty bucket says how long until the next one.

>>> limits = RateLimits(default_rate=None, default_burst=None, workers=1)
>>> limits.wait("k1", rate=2.0, burst=2, now=0.0), limits.wait("k1", 2.0, 2, 0.0)
(0.0, 0.0)
>>> limits.wait("k1", 2.0, 2, 0.0)
0.5
>>> limits.wait("k1", 2.0, 2, 0.5)
0.0
>>> limits.wait("k2", rate=None, burst=None, now=0.0)  # no limit for this key
0.0
"""

from __future__ import annotations


class RateLimits:
    def __init__(self, default_rate: float | None, default_burst: int | None, workers: int) -> None:
        self.default_rate = default_rate
        self.default_burst = default_burst
        self.workers = max(1, workers)
        #: key id → [tokens, time of the last refill]
        self._buckets: dict[str, list[float]] = {}

    def wait(self, key_id: str, rate: float | None, burst: int | None, now: float) -> float:
        """0.0 and a token taken if the key may go on now; else the seconds to wait."""
        rate = rate or self.default_rate
        if rate is None:
            return 0.0
        per_worker = rate / self.workers
        capacity = max(1.0, (burst or self.default_burst or rate) / self.workers)
        bucket = self._buckets.get(key_id)
        if bucket is None:
            bucket = self._buckets[key_id] = [capacity, now]
        tokens = min(capacity, bucket[0] + (now - bucket[1]) * per_worker)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / per_worker

    def forget(self, keep: set[str]) -> None:
        """Drop the buckets of keys no longer in force."""
        for key_id in [k for k in self._buckets if k not in keep]:
            del self._buckets[key_id]

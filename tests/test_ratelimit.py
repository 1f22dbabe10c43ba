"""Token buckets per key: the rate and burst of a key, shared among the workers."""

from __future__ import annotations

import doctest

from gateway import ratelimit
from gateway.store import keys


def test_doctests() -> None:
    for module in (ratelimit, keys):
        assert doctest.testmod(module).failed == 0


def test_a_key_gets_its_rate_over_time_and_its_burst_at_once() -> None:
    limits = ratelimit.RateLimits(None, None, workers=1)
    granted = sum(limits.wait("k", 10.0, 5, now=0.0) == 0.0 for _ in range(20))
    assert granted == 5  # the burst
    # Over the next 2 s, at 100 tries a second: 10/s more.
    later = sum(limits.wait("k", 10.0, 5, now=t / 100) == 0.0 for t in range(1, 201))
    assert later in (19, 20)  # the 20th token is due at exactly 2 s (float rounding)


def test_each_worker_enforces_its_share() -> None:
    workers = [ratelimit.RateLimits(None, None, workers=2) for _ in range(2)]
    granted = 0
    for t in range(1, 1001):  # 10 s, requests alternating between the two workers
        granted += workers[t % 2].wait("k", 4.0, 2, now=t / 100) == 0.0
    assert 38 <= granted <= 42  # 4/s in all, not 4/s per worker


def test_the_default_applies_to_keys_without_a_limit_of_their_own() -> None:
    limits = ratelimit.RateLimits(default_rate=1.0, default_burst=None, workers=1)
    assert limits.wait("k", None, None, now=0.0) == 0.0
    assert limits.wait("k", None, None, now=0.0) == 1.0  # one second until the next token
    unlimited = ratelimit.RateLimits(None, None, workers=1)
    assert all(unlimited.wait("k", None, None, now=0.0) == 0.0 for _ in range(1000))

"""UUIDv7 identifiers (RFC 9562): time-ordered, so checks sort by when they were made.

>>> a, b = uuid7(), uuid7()
>>> len(a), a[14], a[19] in "89ab", a < b
(36, '7', True, True)
"""

from __future__ import annotations

import random
import time

_random = random.SystemRandom().getrandbits  # seeded per process from the OS
_bits = random.Random(_random(128)).getrandbits
_last_ms = 0
_counter = 0


def uuid7(ms: int | None = None) -> str:
    """A new UUIDv7 string for time ``ms`` (default now), monotonic within this process.

    A 12-bit counter orders ids of the same millisecond (more than 4,096 in one
    millisecond borrow the next); 62 random bits keep ids of different processes apart.
    """
    global _last_ms, _counter  # the process's monotonic clock state
    if ms is None:
        ms = time.time_ns() // 1_000_000
    if ms <= _last_ms:
        _counter += 1
        if _counter > 0xFFF:
            _last_ms += 1
            _counter = 0
        ms = _last_ms
    else:
        _last_ms, _counter = ms, 0
    h = "%012x7%03x%016x" % (ms, _counter, 0x8000_0000_0000_0000 | _bits(62))  # noqa: UP031
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

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


def uuid7_ms(identifier: str) -> int | None:
    """The time (ms since the epoch) a UUIDv7 string was made; None if it is not one.

    >>> uuid7_ms("01a25162-c43c-7000-8469-54a8f14f49ab"), uuid7_ms("not-a-uuid")
    (1796661756988, None)
    >>> ms = time.time_ns() // 1_000_000; uuid7_ms(uuid7()) >= ms
    True
    """
    if len(identifier) != 36 or identifier[14] != "7" or identifier[8] != "-":
        return None
    try:
        return int(identifier[:8] + identifier[9:13], 16)
    except ValueError:
        return None

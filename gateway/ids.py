"""UUIDv7 identifiers (RFC 9562): time-ordered, so checks sort by when they were made.

>>> a, b = uuid7(), uuid7()
>>> len(a), a[14], a < b
(36, '7', True)
"""

from __future__ import annotations

import os
import time

_last_ms = 0
_counter = 0


def uuid7() -> str:
    """A new UUIDv7 string; monotonic within this process (12-bit counter per millisecond)."""
    global _last_ms, _counter
    ms = time.time_ns() // 1_000_000
    if ms <= _last_ms:
        _counter += 1
        if _counter > 0xFFF:  # more than 4096 ids in one millisecond: borrow the next one
            _last_ms += 1
            _counter = 0
        ms = _last_ms
    else:
        _last_ms, _counter = ms, 0
    rand = int.from_bytes(os.urandom(8), "big") & 0x3FFF_FFFF_FFFF_FFFF
    value = (ms << 80) | (0x7 << 76) | (_counter << 64) | (0b10 << 62) | rand
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

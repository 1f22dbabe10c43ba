"""UUIDv7 check ids: time-ordered, and telling when they were made (a reader uses it to
know whether a check missing from the store may still be held by another worker)."""

from __future__ import annotations

import doctest
import time
import uuid

from gateway import ids


def test_doctests() -> None:
    result = doctest.testmod(ids)
    assert result.attempted > 0
    assert result.failed == 0


def test_the_time_read_back_is_the_time_made() -> None:
    before = time.time_ns() // 1_000_000
    made = [ids.uuid7() for _ in range(1000)]
    after = time.time_ns() // 1_000_000
    times = [ids.uuid7_ms(i) for i in made]
    assert all(t is not None and before <= t <= after + 1 for t in times)
    assert made == sorted(made)
    assert all(uuid.UUID(i).version == 7 for i in made)


def test_other_ids_tell_no_time() -> None:
    assert ids.uuid7_ms(str(uuid.uuid4())) is None
    assert ids.uuid7_ms("0193b6c2-0000-7000-8000-00000000000") is None  # one short
    assert ids.uuid7_ms("0193b6c2-zzzz-7000-8000-000000000001") is None

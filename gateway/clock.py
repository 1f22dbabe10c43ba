"""The time of a check, in China Standard Time, formatted once per millisecond.

>>> clock = CheckClock()
>>> ms, text, day = clock.now()
>>> text.endswith("+08:00"), len(text), day.isoformat() == text[:10]
(True, 29, True)
"""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta, timezone

#: China Standard Time: dates (expiry, listing) and check times are reckoned in it.
CST = timezone(timedelta(hours=8), "CST")


class CheckClock:
    """``now()`` → (epoch milliseconds, ISO 8601 text with offset, the date in CST)."""

    __slots__ = ("_day", "_ms", "_text")

    def __init__(self) -> None:
        self._ms = -1
        self._text = ""
        self._day = date.min

    def now(self) -> tuple[int, str, date]:
        ms = time.time_ns() // 1_000_000
        if ms != self._ms:
            moment = datetime.fromtimestamp(ms / 1000, CST)
            self._ms, self._text, self._day = (
                ms,
                moment.isoformat(timespec="milliseconds"),
                moment.date(),
            )
        return ms, self._text, self._day

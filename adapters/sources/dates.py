"""Dates as list sources write them, turned into :class:`datetime.date`.

Accepted: ``2026-03-01``, ``2026/3/1``, ``2026.3.1`` (one separator, used
twice; month and day with one or two digits), ``2026年3月1日`` and
``20260301``, each optionally followed by a time (``2026-03-01 10:20:30``,
``2026/3/1 10:20``, ``2026-03-01T10:20:30``), of which only the date is kept.
Full-width digits are read as digits. Pure: no locale, no clock.
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from datetime import date, timedelta

#: The accepted forms, as error messages name them.
ACCEPTED = (
    "2026-03-01, 2026/3/1, 2026.3.1, 2026年3月1日 or 20260301, "
    "optionally followed by a time such as 10:20:30"
)

_DATES = (
    re.compile(r"([0-9]{4})([-/.])([0-9]{1,2})\2([0-9]{1,2})"),
    re.compile(r"([0-9]{4})\s*年\s*([0-9]{1,2})\s*月\s*([0-9]{1,2})\s*日"),
    re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})"),
)
_TIME = re.compile(r"(?:[ T]\s*([0-9]{1,2}):([0-9]{2})(?::([0-9]{2})(?:\.[0-9]{1,6})?)?)?")


def _parts(text: str) -> tuple[int, int, int] | None:
    for pattern in _DATES:
        match = pattern.match(text)
        if match is None:
            continue
        time = _TIME.fullmatch(text, match.end())
        if time is None:
            return None
        hour, minute, second = (int(g) if g else 0 for g in time.groups())
        if hour > 23 or minute > 59 or second > 59:
            return None
        groups = [g for g in match.groups() if g.isdigit()]
        return int(groups[0]), int(groups[1]), int(groups[2])
    return None


def parse_date(text: str) -> date:
    """The date ``text`` writes; ``ValueError`` naming the accepted forms otherwise."""
    cleaned = unicodedata.normalize("NFKC", text).strip()
    parts = _parts(cleaned)
    if parts is None:
        raise ValueError(f"{text!r} is not a date; accepted: {ACCEPTED}")
    try:
        return date(*parts)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a calendar date ({exc})") from None


def shift(day: date, *, years: int = 0, months: int = 0, days: int = 0) -> date:
    """``day`` moved by whole years and months (clamped to the month's end: 2024-02-29
    plus one year is 2025-02-28), then by ``days``."""
    index = day.month - 1 + months + 12 * years
    year, month = day.year + index // 12, index % 12 + 1
    last = calendar.monthrange(year, month)[1]
    return date(year, month, min(day.day, last)) + timedelta(days=days)

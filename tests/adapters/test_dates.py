"""Dates as list sources write them: every accepted form, and what is refused."""

from __future__ import annotations

from datetime import date

import pytest

from adapters.sources.dates import parse_date, shift


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01", date(2026, 3, 1)),
        ("2026-3-1", date(2026, 3, 1)),
        ("2026/3/1", date(2026, 3, 1)),
        ("2026/03/01", date(2026, 3, 1)),
        ("2026.3.1", date(2026, 3, 1)),
        ("2026.12.31", date(2026, 12, 31)),
        ("2026年3月1日", date(2026, 3, 1)),
        ("2026年03月01日", date(2026, 3, 1)),
        ("2026 年 3 月 1 日", date(2026, 3, 1)),
        ("２０２６年３月１日", date(2026, 3, 1)),
        ("20260301", date(2026, 3, 1)),
        ("2026-03-01 10:20:30", date(2026, 3, 1)),
        ("2026-03-01T10:20:30", date(2026, 3, 1)),
        ("2026-03-01 10:20:30.250", date(2026, 3, 1)),
        ("2026/3/1 10:20", date(2026, 3, 1)),
        ("2026/3/1 0:00", date(2026, 3, 1)),
        ("2026年3月1日 23:59:59", date(2026, 3, 1)),
        ("  2026-03-01\t", date(2026, 3, 1)),
        ("2024-02-29", date(2024, 2, 29)),
    ],
)
def test_accepted_forms(text: str, expected: date) -> None:
    assert parse_date(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "2026-03",
        "2026-3/1",
        "2026/3-1",
        "26-03-01",
        "2026-003-01",
        "2026年3月1",
        "2026年3月",
        "202631",
        "2026030",
        "202603011",
        "20260301x",
        "1/3/2026",
        "01.03.2026",
        "March 1, 2026",
        "2026-03-01 25:00",
        "2026-03-01 10:60",
        "2026-03-01 10:20:61",
        "2026-03-01 10",
        "2026-03-01T10:20:30+08:00",
        "2026-03-01 晚上",
    ],
)
def test_other_forms_are_refused_naming_the_accepted_ones(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a date; accepted: 2026-03-01, 2026/3/1, ") as e:
        parse_date(text)
    assert "2026年3月1日" in str(e.value)
    assert "20260301" in str(e.value)
    assert repr(text) in str(e.value)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("2026-02-30", "day is out of range for month"),
        ("2026/4/31", "day is out of range for month"),
        ("20260229", "day is out of range for month"),
        ("2026-03-00", "day is out of range for month"),
        ("2026年13月1日", "month must be in 1..12"),
        ("2026.0.10", "month must be in 1..12"),
        ("0000-01-01", "year 0 is out of range"),
    ],
)
def test_impossible_dates_are_refused(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=r"is not a calendar date") as e:
        parse_date(text)
    assert str(e.value) == f"{text!r} is not a calendar date ({reason})"


@pytest.mark.parametrize(
    ("start", "moves", "expected"),
    [
        (date(2026, 3, 1), {"months": 24}, date(2028, 3, 1)),
        (date(2026, 3, 1), {"years": 3, "days": -1}, date(2029, 2, 28)),
        (date(2024, 2, 29), {"years": 1}, date(2025, 2, 28)),
        (date(2026, 1, 31), {"months": 1}, date(2026, 2, 28)),
        (date(2026, 3, 31), {"months": -1}, date(2026, 2, 28)),
        (date(2026, 11, 15), {"months": 3}, date(2027, 2, 15)),
        (date(2026, 3, 1), {"days": -1}, date(2026, 2, 28)),
        (date(2026, 3, 1), {}, date(2026, 3, 1)),
    ],
)
def test_shift_moves_by_calendar_months_clamped_to_the_month_end(
    start: date, moves: dict[str, int], expected: date
) -> None:
    assert shift(start, **moves) == expected

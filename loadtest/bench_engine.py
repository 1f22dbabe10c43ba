"""Time ``decide()`` per call for subjects with 0, 1 and 5 hits (``make bench-engine``).

Reports the best of several repeats (the least disturbed by the rest of the
machine) and the median, in microseconds per call.
"""

from __future__ import annotations

import statistics
import timeit
from datetime import date, timedelta

import measures_catalog
from gateway.engine import decide
from gateway.model import Grade, ListEntry

TODAY = date(2026, 11, 22)


def _entry(n: int, list_type: str, status: str = "active") -> ListEntry:
    return ListEntry(
        entry_id=f"e-{n}",
        uscc="91110000600037341L",
        list_type=list_type,
        status=status,  # type: ignore[arg-type]
        listed_on=TODAY - timedelta(days=100),
        expires_on=TODAY + timedelta(days=600),
    )


CASES: list[tuple[str, list[ListEntry], Grade | None, str]] = [
    ("0 hits (clear)", [], None, "bidding"),
    ("0 hits, grade good", [], Grade("good"), "licensing"),
    ("1 hit (court_defaulter, bidding)", [_entry(1, "court_defaulter")], None, "bidding"),
    ("1 hit (tax_grade_a, licensing)", [_entry(1, "tax_grade_a")], None, "licensing"),
    (
        "5 hits (licensing, + grade)",
        [
            _entry(1, "court_defaulter"),
            _entry(2, "wage_arrears"),
            _entry(3, "market_serious_violation", "objection_pending"),
            _entry(4, "tax_grade_a"),
            _entry(5, "business_abnormal"),
        ],
        Grade("fair"),
        "licensing",
    ),
]


def main() -> None:
    catalog = measures_catalog.load()
    print(f"decide() on catalog {catalog.version}; µs per call (best / median of 7 repeats)")
    for label, hits, grade, matter in CASES:

        def call(
            hits: list[ListEntry] = hits, grade: Grade | None = grade, matter: str = matter
        ) -> None:
            decide(hits, grade, matter, catalog, TODAY)

        timer = timeit.Timer(call)
        number, _ = timer.autorange()
        number = max(number, 20_000)
        runs = [t / number * 1e6 for t in timer.repeat(repeat=7, number=number)]
        print(f"  {label:36} {min(runs):7.2f} / {statistics.median(runs):7.2f}")


if __name__ == "__main__":
    main()

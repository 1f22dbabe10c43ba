"""The loop report over millions of recorded checks (``make bench-reports``).

Generates, once, a store under ``var/bench-reports/`` with ``--checks`` checks spread over
``--days`` days (50 callers, 10,000 entries of 8 list types and 200 authorities, 0 to 3
hits a check, measures applied on hits) and feedback on 40% of the checks that need it,
written by SQL inside SQLite. Then it times the upkeep's roll-up of all of it, and the
report by each grouping over a month, with everything rolled up and with a tail of
``--tail`` checks not yet rolled up.

    python -m loadtest.bench_reports --checks 10000000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from gateway.store import Maintenance, Store
from gateway.store.reports import GROUPS
from loadtest.harness import REPO

LIST_TYPES = ("court_defaulter", "wage_arrears", "market_serious_violation", "safety_serious",
              "tax_grade_a", "customs_aeo", "social_org_violation", "focus")  # fmt: skip
CODES = ("P-BID-01", "P-LIC-01", "P-LIC-02", "M-LIC-01", "I-LIC-01", "P-SUB-01")
LAST_DAY = date(2026, 11, 22)


def populate(db: Path, checks: int, days: int) -> None:
    """Callers, entries, then ``checks`` checks and their feedback, by SQL."""
    started = time.monotonic()

    async def base() -> None:
        async with await Store.open(db, synchronous="NORMAL") as store:
            for n in range(50):
                await store.create_key(f"系统{n:02d}", f"部门{n % 10}", ["check", "feedback"])

    asyncio.run(base())
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO entries (entry_id, uscc, list_type, authority, listed_on, source, "
        "source_id, created_at, updated_at) VALUES (?, ?, ?, ?, '2026-01-01', 'bench', ?, "
        "'2026-01-01T00:00:00+08:00', '2026-01-01T00:00:00+08:00')",
        [
            (f"{n:032x}", f"91110000{n:010d}", LIST_TYPES[n % 8], f"机关{n % 200:03d}", str(n))
            for n in range(10_000)
        ],
    )
    conn.execute("COMMIT")
    codes = json.dumps(CODES)
    first_day = (LAST_DAY - timedelta(days=days - 1)).toordinal()
    step = 1_000_000
    for lo in range(0, checks, step):
        hi = min(checks, lo + step)
        conn.execute("BEGIN")
        conn.execute(
            f"""
            WITH RECURSIVE n(i) AS (SELECT {lo} UNION ALL SELECT i + 1 FROM n WHERE i + 1 < {hi}),
            r AS (SELECT i, abs(random()) AS a, abs(random()) AS b FROM n),
            c AS (
                SELECT i, a, b, a % 4 AS nhits,
                       date({first_day} + 1721424.5 + i % {days}) AS day
                FROM r
            )
            INSERT INTO checks (check_id, caller_id, matter, uscc, verdict, hit_ids, measures,
                                snapshot_version, catalog_version, checked_at, latency_us,
                                response)
            SELECT printf('%032x', i), 1 + b % 50, 'bidding', printf('91110000%010d', b % 10000000),
                   CASE WHEN nhits > 0 THEN 'restricted' ELSE 'clear' END,
                   CASE nhits
                       WHEN 0 THEN '[]'
                       WHEN 1 THEN json_array(printf('%032x', a % 10000))
                       WHEN 2 THEN json_array(printf('%032x', a % 10000),
                                              printf('%032x', b % 10000))
                       ELSE json_array(printf('%032x', a % 10000), printf('%032x', b % 10000),
                                       printf('%032x', (a + b) % 10000))
                   END,
                   CASE WHEN nhits > 0 THEN json_array(
                       json_array(json_extract('{codes}', '$[' || (a % 6) || ']'), 'apply'),
                       json_array(json_extract('{codes}', '$[' || (b % 6) || ']'),
                                  CASE WHEN b % 3 = 0 THEN 'suspended' ELSE 'apply' END))
                   ELSE '[]' END,
                   1, 'bench', day || 'T10:00:00.000+08:00', 200, x'7b7d'
            FROM c
            """
        )
        conn.execute(
            """
            INSERT INTO feedback (check_id, caller_id, measures, outcome, received_at, body)
            SELECT check_id, caller_id,
                   (SELECT json_group_array(json_object('code', json_extract(value, '$[0]'),
                                                        'executed', json(CASE WHEN abs(random()) % 5
                                                        THEN 'true' ELSE 'false' END)))
                    FROM json_each(measures)),
                   '已处理', checked_at, x'7b7d'
            FROM checks WHERE rowid > ? AND rowid <= ? AND verdict = 'restricted'
              AND abs(random()) % 10 < 4
            """,
            (lo, hi),
        )
        conn.execute("COMMIT")
        print(f"  {hi:,} checks ({time.monotonic() - started:.0f} s)", flush=True)
    conn.close()


def roll_up(db: Path) -> tuple[float, int]:
    maintenance = Maintenance(db)
    started, rows = time.monotonic(), 0
    while (done := maintenance.roll_up_loop(limit=50_000)) > 0:
        rows += done
        if rows % 1_000_000 < 100_000:
            print(f"  rolled up {rows:,} rows ({time.monotonic() - started:.0f} s)", flush=True)
    maintenance.close()
    return time.monotonic() - started, rows


def time_reports(db: Path, first: date, last: date, runs: int) -> dict[str, float]:
    async def go() -> dict[str, float]:
        timings: dict[str, float] = {}
        async with await Store.open(db) as store:
            for group_by in GROUPS:
                seconds = []
                for _ in range(runs):
                    started = time.perf_counter()
                    await store.loop_report(first, last, group_by, LAST_DAY, 5)
                    seconds.append(time.perf_counter() - started)
                timings[group_by] = round(statistics.median(seconds) * 1000, 1)
        return timings

    return asyncio.run(go())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checks", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--tail", type=int, default=100_000, help="checks left un-rolled-up")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "var" / "bench-reports"))
    opts = parser.parse_args(argv)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    db = out / f"store-{opts.checks}.db"
    result: dict[str, Any] = {"checks": opts.checks, "days": opts.days}
    if not db.exists():
        print(f"generating {opts.checks:,} checks into {db} ...", flush=True)
        populate(db, opts.checks, opts.days)
        print("rolling up ...", flush=True)
        seconds, rows = roll_up(db)
        result["roll_up"] = {"seconds": round(seconds, 1), "rows": rows,
                             "rows_per_second": round(rows / max(seconds, 1e-9))}  # fmt: skip
        print(f"  rolled up {rows:,} rows in {seconds:.1f} s", flush=True)
    first, last = LAST_DAY - timedelta(days=29), LAST_DAY
    result["report_ms_rolled_up"] = time_reports(db, first, last, opts.runs)
    print(
        f"report over {first}..{last}, all rolled up (median ms): {result['report_ms_rolled_up']}"
    )
    conn = sqlite3.connect(db, isolation_level=None)
    (top,) = conn.execute("SELECT max(rowid) FROM checks").fetchone()
    conn.execute("UPDATE loop_marks SET last_rowid = ? WHERE source = 'checks'", (top - opts.tail,))
    (fb_top,) = conn.execute("SELECT max(rowid) FROM feedback").fetchone()
    (fb_mark,) = conn.execute(
        "SELECT coalesce(max(rowid), 0) FROM feedback WHERE check_id <= printf('%032x', ?)",
        (top - opts.tail - 1,),
    ).fetchone()
    conn.execute("UPDATE loop_marks SET last_rowid = ? WHERE source = 'feedback'", (fb_mark,))
    # The watermarks moved back by --tail checks: the report computes those on the fly (they
    # are counted twice in this timing run, which is about time, not totals), then restored.
    result["report_ms_with_tail"] = time_reports(db, first, last, opts.runs)
    conn.execute("UPDATE loop_marks SET last_rowid = ? WHERE source = 'checks'", (top,))
    conn.execute("UPDATE loop_marks SET last_rowid = ? WHERE source = 'feedback'", (fb_top,))
    conn.close()
    print(
        f"same with {opts.tail:,} checks not rolled up (median ms): {result['report_ms_with_tail']}"
    )
    (out / f"result-{opts.checks}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out / f'result-{opts.checks}.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

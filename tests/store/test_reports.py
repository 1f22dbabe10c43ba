"""The loop report against a plain Python count of the same checks and feedback: before the
upkeep rolls anything up, halfway, and after, on both backends; and the same checks and
feedback recorded and maintained on both giving the same reports, backlog and recent
checks."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from gateway.model import CheckRecord, FeedbackRecord, MeasureFeedback
from gateway.store import Store
from gateway.store.pg import PgStore
from gateway.store.reports import COUNTS, GROUPS
from tests.fixtures import entry
from tests.store.helpers import AnyStore, OpenStore, Upkeep, check, feedback, record, run, uscc

TODAY = date(2026, 11, 22)
DUE = 5
LISTS = [
    ("court_defaulter", "北京市第一中级人民法院"),
    ("wage_arrears", "北京市人社局"),
    ("tax_grade_a", "国家税务总局北京市税务局"),
    ("court_defaulter", "上海市高级人民法院"),
]
CODES = ["P-BID-01", "P-LIC-01", "M-LIC-01", "I-LIC-01"]


def scenario(rnd: random.Random, callers: list[int], entries: dict[str, tuple[str, str]]) -> tuple[
    list[CheckRecord], list[FeedbackRecord]
]:  # fmt: skip
    checks, given = [], []
    ids = list(entries)
    for n in range(1, 400):
        day = TODAY - timedelta(days=rnd.randrange(12))
        hits = tuple(rnd.sample(ids, rnd.choice((0, 0, 1, 1, 2, 3))))
        measures = tuple(
            (code, rnd.choice(("apply", "apply", "suspended")))
            for code in rnd.sample(CODES, rnd.randrange(0, 4) if hits else 0)
        )
        record = check(
            n,
            rnd.choice(callers),
            hit_ids=hits,
            measures=measures,
            checked_at=f"{day.isoformat()}T10:00:{n % 60:02d}.000+08:00",
            check_id=f"{n:032x}",
        )
        checks.append(record)
        if measures and rnd.random() < 0.5:
            reported = tuple(
                MeasureFeedback(code, rnd.random() < 0.7, "理由") for code, _ in measures
            )
            given.append(feedback(record.check_id, record.caller_id, measures=reported))
    return checks, given


def reference(
    checks: list[CheckRecord],
    given: list[FeedbackRecord],
    entries: dict[str, tuple[str, str]],
    names: dict[int, str],
    group_by: str,
    first: date,
    last: date,
) -> list[dict[str, Any]]:
    """The report's counts, one check at a time, in Python."""
    rows: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTS, 0))
    overdue_until = TODAY - timedelta(days=DUE + 1)
    reported = {f.check_id: f for f in given}
    for c in checks:
        day = date.fromisoformat(c.checked_at[:10])
        if not first <= day <= last:
            continue
        applied = [code for code, state in c.measures if state == "apply"]
        fb = reported.get(c.check_id)
        groups: dict[str, dict[str, Any]] = {}
        if group_by == "caller":
            groups[names[c.caller_id]] = {"hits": len(c.hit_ids), "applied": len(applied)}
        elif group_by in ("list_type", "authority"):
            at = 0 if group_by == "list_type" else 1
            for hit in c.hit_ids:
                key = entries[hit][at]
                groups.setdefault(key, {"hits": 0, "applied": len(applied)})["hits"] += 1
        for key, g in groups.items():
            row = rows[key]
            row["checks"] += 1
            row["hits"] += g["hits"]
            row["measures_applied"] += g["applied"]
            pending = g["applied"] > 0 and fb is None
            row["feedback_pending"] += pending
            row["feedback_overdue"] += pending and day <= overdue_until
            if fb is not None:
                row["feedback_received"] += 1
                row["executed"] += sum(m.executed for m in fb.measures)
                row["not_executed"] += sum(not m.executed for m in fb.measures)
        if group_by == "measure":
            for code in applied:
                row = rows[code]
                row["checks"] += 1
                row["hits"] += len(c.hit_ids)
                row["measures_applied"] += 1
                row["feedback_pending"] += fb is None
                row["feedback_overdue"] += fb is None and day <= overdue_until
            for m in fb.measures if fb is not None else ():
                row = rows[m.code]
                row["feedback_received"] += 1
                row["executed"] += m.executed
                row["not_executed"] += not m.executed
    return sorted(
        ({"key": k, **v} for k, v in rows.items()), key=lambda r: (-r["checks"], r["key"])
    )


async def prepare(store: AnyStore) -> tuple[list[int], dict[int, str], dict[str, tuple[str, str]]]:
    """Three callers and an entry of each list; (caller ids, their names, entries by id)."""
    made = [await store.create_key(f"系统{i}", "政务中心", ["check"]) for i in range(3)]
    result = await store.upsert_entries(
        [
            entry(uscc(i), lt, f"s{i}", authority=authority)
            for i, (lt, authority) in enumerate(LISTS)
        ],
        "test",
    )
    ids = dict(zip(result.entry_ids, LISTS, strict=True))
    names = {c.caller_id: f"{c.name}（{c.department}）" for c, _ in made}
    return list(names), names, ids


RANGES = [
    (TODAY - timedelta(days=11), TODAY),
    (TODAY - timedelta(days=8), TODAY - timedelta(days=3)),
]
STAGES = ("nothing rolled up", "part rolled up", "all rolled up", "more since")


async def advance(
    store: AnyStore,
    upkeep: Upkeep,
    stage: str,
    checks: list[CheckRecord],
    given: list[FeedbackRecord],
) -> None:
    """Record or maintain what ``stage`` says: the first 250 checks (and their feedback)
    first, 100 rows rolled up, then everything, then the rest of the checks."""
    if stage == "nothing rolled up":
        await record(store, checks[:250], [f for f in given if int(f.check_id, 16) <= 250])
    elif stage == "part rolled up":
        await upkeep.roll_up_loop(limit=100)
    elif stage == "all rolled up":
        await upkeep.run_once()
    else:
        await record(store, checks[250:], [f for f in given if int(f.check_id, 16) > 250])


@pytest.mark.parametrize("seed", [1, 2])
def test_the_report_counts_what_was_checked_and_reported(open_store: OpenStore, seed: int) -> None:
    async def go() -> None:
        async with await open_store() as store, Upkeep(store) as upkeep:
            callers, names, entries = await prepare(store)
            checks, given = scenario(random.Random(seed), callers, entries)
            for stage in STAGES:
                await advance(store, upkeep, stage, checks, given)
                recorded = checks if stage == "more since" else checks[:250]
                answered = [f for f in given if int(f.check_id, 16) <= len(recorded)]
                for group_by in GROUPS:
                    for first, last in RANGES:
                        expected = reference(
                            recorded, answered, entries, names, group_by, first, last
                        )
                        found = await store.loop_report(first, last, group_by, TODAY, DUE)
                        assert found == expected, (stage, group_by, first)
                if stage == "all rolled up":  # the backlog counts what is rolled up
                    by_caller = reference(
                        recorded, answered, entries, names, "caller", date.min, date.max
                    )
                    assert await store.feedback_backlog(TODAY, DUE) == (
                        sum(r["feedback_pending"] for r in by_caller),
                        sum(r["feedback_overdue"] for r in by_caller),
                    )

    run(go())


# --- the same checks on both backends -----------------------------------------------------


async def answers(store: AnyStore) -> list[Any]:
    """What the store answers at each stage of the same scenario: every report, the backlog,
    each subject's recent checks and some checks and feedback, entry ids as their list's
    position (each store draws its own)."""
    said: list[Any] = []
    async with Upkeep(store) as upkeep:
        callers, _, entries = await prepare(store)
        position = {entry_id: n for n, entry_id in enumerate(entries)}
        checks, given = scenario(random.Random(3), callers, entries)
        for stage in STAGES:
            await advance(store, upkeep, stage, checks, given)
            for group_by in GROUPS:
                for first, last in [
                    *RANGES,
                    (TODAY - timedelta(days=4), TODAY - timedelta(days=4)),
                ]:
                    said.append(await store.loop_report(first, last, group_by, TODAY, DUE))
            for today, due in ((TODAY, DUE), (TODAY, 0), (TODAY + timedelta(days=30), DUE)):
                said.append(await store.feedback_backlog(today, due))
            for n in range(7):
                for limit in (1, 5, 400):
                    said.append(await store.recent_checks(uscc(n), limit))
            for c in checks[::37]:
                said.append(
                    (await store.get_check(c.check_id), await store.get_feedback(c.check_id))
                )
    text = msgspec.json.encode(said, order="deterministic").decode()
    for entry_id, n in position.items():
        text = text.replace(entry_id, f"<entry {n}>")
    return msgspec.json.decode(text)


def test_the_same_checks_give_the_same_answers_on_both(tmp_path: Path, postgres_url: str) -> None:
    async def go() -> tuple[list[Any], list[Any]]:
        async with await Store.open(tmp_path / "gateway.db") as sqlite:
            on_sqlite = await answers(sqlite)
        async with await PgStore.open(postgres_url) as postgres:
            on_postgres = await answers(postgres)
        return on_sqlite, on_postgres

    on_sqlite, on_postgres = run(go())
    rows = [a for a in on_sqlite if isinstance(a, list) and a and isinstance(a[0], dict)]
    assert sum("key" in a[0] for a in rows) > 40  # reports with groups in them
    assert sum("check_id" in a[0] and len(a) >= 5 for a in rows) > 5  # recent checks found
    backlogs = [a for a in on_sqlite if isinstance(a, list) and a and isinstance(a[0], int)]
    assert any(pending > overdue > 0 for pending, overdue in backlogs)
    assert on_postgres == on_sqlite


def test_a_report_under_way_holds_up_no_feedback_look_up(tmp_path: Path) -> None:
    """A loop report scans for tens of milliseconds: on a connection of its own, so that a
    feedback's look-up of its check (and the key ring's reload, the change log's poll) does
    not queue behind it. The report is held open here until the look-up has answered."""

    async def scenario() -> None:
        async with await Store.open(tmp_path / "g.db") as store:
            release = asyncio.Event()

            async def long_report(db: Any) -> int:
                await release.wait()
                return 0

            report = asyncio.create_task(store._read(long_report, snapshot=True, report=True))
            await asyncio.sleep(0.01)  # the report holds its connection
            assert await asyncio.wait_for(store.get_check("0" * 36), timeout=5) is None
            assert not report.done()
            release.set()
            assert await report == 0

    asyncio.run(scenario())

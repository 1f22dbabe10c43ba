"""The snapshot built from the store by several processes answers as the one built alone."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from gateway import feed, snapshot_build
from gateway.compact import CompactSubjects
from gateway.compact_build import CompactBuilder
from gateway.model import EntryRecord, Grade
from gateway.snapshot import Snapshot
from gateway.store import LiveRows, Store, live
from tests.store.helpers import entry, run, uscc

GOOD = Grade("good", "浙江省公共信用评价", date(2026, 10, 1))
ODD = "ABC-123"  # not 18 characters: kept beside the table
AUTHORITIES = ["北京市第一中级人民法院", "上海市税务局", "福州市中级人民法院"]


async def seeded(path: Path) -> Store:
    """300 listed subjects (every third with two entries, three authorities, two list
    types), grades on 250-349 (the last 50 graded only), one entry revoked, one odd code."""
    store = await Store.open(path)
    rows = [
        entry(
            n,
            source_id=f"{n}a",
            authority=AUTHORITIES[n % 3],
            list_type="court_defaulter" if n % 2 else "tax_grade_a",
            listed_on=date(2026, 1 + n % 12, 1),
        )
        for n in range(300)
    ]
    rows += [entry(n, source_id=f"{n}b") for n in range(0, 300, 3)]
    rows.append(entry(0, uscc=ODD, source_id="odd"))
    result = await store.upsert_entries(rows, "import")
    await store.revoke(result.entry_ids[1], "撤销", "clerk")
    await store.put_grades([(uscc(n), GOOD) for n in range(250, 350)], "grades")
    return store


async def built_alone(store: Store) -> CompactSubjects:
    builder = CompactBuilder()
    async for rows, grades in store.live_rows():
        builder.add_rows(rows, grades)
    builder.close_rows()
    return builder.finish()


def codes() -> list[str]:
    return [uscc(n) for n in range(400)] + [ODD]


def test_parts_answer_every_code_as_the_build_alone(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with await seeded(tmp_path / "g.db") as store:
            alone = await built_alone(store)
            count, cuts = await store.live_plan(3)
            assert count == 300 + 100 + 1 - 1  # the revoked entry is not live
            assert len(cuts) == 2
            assert cuts == sorted(cuts)
            builder = await snapshot_build.build_in_parts(str(store.path), cuts)
            assert builder is not None
            builder.close_rows()
            in_parts = builder.finish()
        assert builder.entry_count == 400
        assert (len(in_parts), len(alone)) == (350, 350)  # subject 1: its only entry revoked
        for code in codes():
            assert in_parts.get(code) == alone.get(code), code
        assert in_parts.get(uscc(299)) is not None
        assert in_parts.get(uscc(349)) is not None

    run(scenario())


def test_too_few_entries_for_parts(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with await seeded(tmp_path / "g.db") as store:
            assert await store.live_plan(2, snapshot_build.MIN_ENTRIES) == (400, [])
            assert await snapshot_build.build_in_parts(str(store.path), []) is None

    run(scenario())


def test_a_failed_part_leaves_the_build_to_the_worker(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with await seeded(tmp_path / "g.db") as store:
            _, cuts = await store.live_plan(2)
        (tmp_path / "g.db").unlink()  # each part's scan fails: no such table
        assert await snapshot_build.build_in_parts(str(tmp_path / "g.db"), cuts) is None

    run(scenario())


def test_a_worker_builds_its_snapshot_in_parts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """What a worker does at its start with no saved snapshot (``feed.build``)."""
    monkeypatch.setattr(snapshot_build, "MIN_ENTRIES", 0)
    monkeypatch.setattr(snapshot_build, "processes", lambda: 3)

    async def scenario() -> None:
        async with await seeded(tmp_path / "g.db") as store:
            alone = await built_alone(store)
            snapshot = Snapshot()
            with caplog.at_level(logging.INFO):
                await feed.build(store, snapshot)
            assert "snapshot built from the store in" in caplog.text
            assert "in parts" in caplog.text
            assert "snapshot packed in 3 parts by as many processes" in caplog.text
            assert snapshot.origin == "store"
            assert snapshot.entry_count == 400
            for code in codes():
                assert snapshot.lookup(code) == alone.get(code), code

    run(scenario())


def rows_of(chunks: list[LiveRows]) -> list[EntryRecord]:
    return [row for rows, _ in chunks for row in rows]


def grades_of(chunks: list[LiveRows]) -> list[str]:
    return [code for _, grades in chunks for code, _ in grades]


def test_a_range_of_the_scan_holds_its_codes_entries_and_grades(tmp_path: Path) -> None:
    """``stream_rows`` from ``low`` (included) to ``high`` (excluded): the parts of a scan
    cut at the plan's codes add up to the whole scan, nothing twice."""

    async def scenario() -> None:
        async with await seeded(tmp_path / "g.db") as store:
            _, cuts = await store.live_plan(4)
        assert len(cuts) == 3
        bounds = list(zip([None, *cuts], [*cuts, None], strict=True))
        conn = live.scan_connection(tmp_path / "g.db")
        try:
            whole = list(live.stream_rows(conn, 50))
            parts = [list(live.stream_rows(conn, 50, low, high)) for low, high in bounds]
        finally:
            conn.close()
        for (low, high), chunks in zip(bounds, parts, strict=True):
            seen = [row[0] for row in rows_of(chunks)] + grades_of(chunks)
            assert seen
            assert all((low is None or low <= c) and (high is None or c < high) for c in seen)
        assert [row for part in parts for row in rows_of(part)] == rows_of(whole)
        assert sorted(code for part in parts for code in grades_of(part)) == grades_of(whole)

    run(scenario())


def test_a_part_ends_with_the_worker_that_started_it(tmp_path: Path) -> None:
    """A worker killed while its parts are under way (a shutdown, the OOM killer) does
    not leave them running: each is killed with it. Here the part waits on a full pipe
    whose reading end this test holds open, so only its worker's death can end it."""

    async def seed() -> None:
        async with await Store.open(tmp_path / "g.db") as store:
            await store.upsert_entries([entry(n, source_id=f"{n}a") for n in range(3000)], "import")

    run(seed())
    read_end, write_end = os.pipe()
    worker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time\n"
            "part = subprocess.Popen([sys.executable, '-m', 'gateway.snapshot_build', "
            f"{str(tmp_path / 'g.db')!r}, '', '', '0', '1'], stdout={write_end})\n"
            "print(part.pid, flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        pass_fds=(write_end,),
        text=True,
    )
    os.close(write_end)
    try:
        assert worker.stdout is not None
        part = int(worker.stdout.readline())
        time.sleep(1.0)  # the part has packed its 3,000 entries and waits on the full pipe
        assert _alive(part)
    finally:
        worker.kill()
        worker.wait()
        if worker.stdout is not None:
            worker.stdout.close()
    try:
        deadline = time.monotonic() + 10
        while _alive(part) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(part)
    finally:
        os.close(read_end)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has ended (its parent, init, reaps it)

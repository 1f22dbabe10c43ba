"""A saved snapshot: the next start reads it and catches up; a file from another store, or
a damaged one, is never used."""

from __future__ import annotations

import asyncio
import random
from datetime import date
from pathlib import Path

from gateway import feed, snapshot_file
from gateway.model import EntryInput, Grade
from gateway.snapshot import Snapshot
from gateway.store import Store
from loadtest.datagen import make_uscc

CODES = [make_uscc(random.Random(n), "110105") for n in range(40)]


def rows(start: int, count: int, **fields: object) -> list[EntryInput]:
    return [
        EntryInput(
            uscc=CODES[n],
            list_type="court_defaulter",
            listed_on=date(2026, 1, 1),
            authority="北京市第一中级人民法院",
            document_no=f"(2026)京01执{n}号",
            source="court",
            source_id=f"C{n}",
            **fields,  # type: ignore[arg-type]
        )
        for n in range(start, start + count)
    ]


async def build(store: Store, saved: Path) -> Snapshot:
    snapshot = Snapshot()
    await feed.build(store, snapshot, [feed.file_source(saved)], [feed.file_sink(saved)])
    for task in asyncio.all_tasks():
        if task.get_name() == "snapshot-save":
            await task  # the save runs in the background
    return snapshot


def answers(snapshot: Snapshot) -> dict[str, object]:
    return {code: snapshot.lookup(code) for code in CODES}


def test_the_next_start_reads_the_saved_snapshot_and_catches_up(tmp_path: Path) -> None:
    saved = tmp_path / "g.db.snapshot"

    async def scenario() -> None:
        async with await Store.open(tmp_path / "g.db") as store:
            first = await store.upsert_entries(rows(0, 20), "import")
            await store.put_grades([(CODES[30], Grade("excellent", "省信用中心"))], "grades")
            built = await build(store, saved)
            assert built.origin == "store"
            assert saved.exists()

            again = await build(store, saved)
            assert again.origin == "file"
            assert answers(again) == answers(built)
            assert again.entry_count == 20
            assert len(again) == 21

            # Changes after the save are caught up before the snapshot serves.
            await store.upsert_entries(rows(20, 5), "import")
            await store.repair(first.entry_ids[3], date(2026, 2, 1), "已修复", "credit-office")
            caught = await build(store, saved)
            assert caught.origin == "file"
            assert caught.version == await store.last_change_seq()
            assert caught.lookup(CODES[3]) is None
            assert caught.lookup(CODES[22]) is not None
            fresh = Snapshot()
            await feed.build(store, fresh)  # no file: from the store
            assert answers(caught) == answers(fresh)

    asyncio.run(scenario())


def test_a_file_of_another_store_or_a_damaged_one_is_not_used(tmp_path: Path) -> None:
    saved = tmp_path / "shared.snapshot"

    async def scenario() -> None:
        async with await Store.open(tmp_path / "a.db") as store:
            await store.upsert_entries(rows(0, 10), "import")
            await build(store, saved)
        async with await Store.open(tmp_path / "b.db") as other:
            await other.upsert_entries(rows(5, 12), "import")  # same seq numbers, other rows
            snapshot = await build(other, saved)
            assert snapshot.origin == "store"
            assert snapshot.lookup(CODES[0]) is None
            assert snapshot.lookup(CODES[16]) is not None

            saved.write_bytes(saved.read_bytes()[:200])  # truncated
            assert snapshot_file.load(saved) is None
            rebuilt = await build(other, saved)
            assert rebuilt.origin == "store"
            assert answers(rebuilt) == answers(snapshot)
            assert (await build(other, saved)).origin == "file"  # and saved whole again

    asyncio.run(scenario())


def test_workers_starting_together_build_once_and_the_others_read_the_file(
    tmp_path: Path,
) -> None:
    """Three workers of one machine start with no saved snapshot: the one that takes the
    build lock builds from the store; the others wait for its save and read the file."""
    saved, lock = tmp_path / "g.db.snapshot", tmp_path / "g.db.snapshot.lock"

    async def start(store: Store) -> Snapshot:
        snapshot = Snapshot()
        sources, sinks = [feed.file_source(saved)], [feed.file_sink(saved)]
        await feed.build(store, snapshot, sources, sinks, lock)
        return snapshot

    async def scenario() -> None:
        async with await Store.open(tmp_path / "g.db") as store:
            await store.upsert_entries(rows(0, 20), "import")
            workers = await asyncio.gather(start(store), start(store), start(store))
            assert sorted(w.origin for w in workers) == ["file", "file", "store"]
            assert answers(workers[0]) == answers(workers[1]) == answers(workers[2])
            # the lock is let go once saved: a later start does not wait
            later = await asyncio.wait_for(start(store), timeout=10)
            assert later.origin == "file"

    asyncio.run(scenario())

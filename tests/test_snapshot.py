"""The snapshot: one consistent version per lookup, large deltas merged without blocking,
and a worker's copy brought up to date from the store's change log."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path

from gateway import feed
from gateway.model import EntryInput, Grade, ListEntry
from gateway.snapshot import SMALL_DELTA, Snapshot, Subject
from gateway.store import Store


def subject(n: int, list_type: str = "court_defaulter") -> Subject:
    return Subject(
        (
            ListEntry(
                entry_id=f"e{n}", uscc=f"U{n}", list_type=list_type, listed_on=date(2026, 1, 1)
            ),
        ),
        None,
    )


def test_a_large_delta_is_visible_whole_at_once_and_merged_in_slices() -> None:
    snapshot = Snapshot()
    for n in range(10):
        snapshot.load_subject(f"U{n}", *subject(n))
    asyncio.run(snapshot.finish_load(5))
    size = SMALL_DELTA * 3
    delta: dict[str, Subject | None] = {
        f"U{n}": subject(n, "focus") for n in range(SMALL_DELTA * 3)
    }
    delta["U1"] = None  # removed

    merging: list[bool] = []

    async def scenario() -> list[tuple[int, str | None, str | None]]:
        seen: list[tuple[int, str | None, str | None]] = []

        async def watch() -> None:
            for _ in range(6):  # interleaves with the merge's slices
                first, last = snapshot.lookup("U0"), snapshot.lookup(f"U{size - 1}")
                seen.append(
                    (
                        snapshot.version,
                        first and first.entries[0].list_type,
                        last and last.entries[0].list_type,
                    )
                )
                merging.append(snapshot._overlay is not None)
                await asyncio.sleep(0)

        await asyncio.gather(snapshot.apply(delta, 9), watch())
        return seen

    seen = asyncio.run(scenario())
    # every lookup saw one version whole: before the delta, or after all of it
    assert set(seen) <= {(5, "court_defaulter", None), (9, "focus", "focus")}
    assert (9, "focus", "focus") in seen
    assert any(merging), "lookups ran while the delta was being merged"
    assert snapshot.lookup("U1") is None
    assert snapshot._overlay is None
    assert len(snapshot) == SMALL_DELTA * 3 - 1
    assert snapshot.entry_count == SMALL_DELTA * 3 - 1


def test_a_subject_with_nothing_left_leaves_the_index() -> None:
    snapshot = Snapshot()
    snapshot.load_subject("U1", *subject(1))
    asyncio.run(snapshot.finish_load(1))
    asyncio.run(snapshot.apply({"U1": Subject((), None), "U2": Subject((), Grade("good"))}, 3))
    assert snapshot.lookup("U1") is None
    assert snapshot.lookup("U2") == Subject((), Grade("good"))
    assert snapshot.version == 3
    assert snapshot.entry_count == 0


def test_build_then_catch_up_from_the_change_log(tmp_path: Path) -> None:
    db = tmp_path / "g.db"

    def rows(start: int, count: int) -> list[EntryInput]:
        return [
            EntryInput(
                uscc=f"91{n:016d}",
                list_type="court_defaulter",
                listed_on=date(2026, 1, 1),
                source="s",
                source_id=str(n),
            )
            for n in range(start, start + count)
        ]

    async def scenario() -> None:
        async with await Store.open(db) as store:
            await store.upsert_entries(rows(0, 100), "test")
            snapshot = Snapshot()
            await feed.build(store, snapshot)
            assert (len(snapshot), snapshot.version) == (100, await store.last_change_seq())
            result = await store.upsert_entries(rows(100, feed.PAGE + 500), "test")
            await store.repair(result.entry_ids[0], date(2026, 2, 1), "x", "test")
            applied = await feed.catch_up(store, snapshot)
            assert applied == feed.PAGE + 501
            assert snapshot.version == await store.last_change_seq()
            assert len(snapshot) == 100 + feed.PAGE + 499
            assert snapshot.lookup(f"91{100:016d}") is None  # repaired: nothing live

    asyncio.run(scenario())

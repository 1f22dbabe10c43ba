"""Staged imports: a staging file applied by set operations, chunk by chunk."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from gateway.model import EntryInput
from gateway.store import Store
from gateway.store.staging import StagingFile
from tests.store.helpers import entry, query, run, uscc


def stage(tmp_path: Path, rows: dict[int, EntryInput]) -> StagingFile:
    staging = StagingFile(tmp_path)
    for number, row in rows.items():
        staging.add(number, row)
    return staging


def test_rows_repeating_a_key_are_reported_and_dropped_before_anything_is_applied(
    tmp_path: Path,
) -> None:
    staging = stage(
        tmp_path,
        {1: entry(1), 2: entry(2), 3: entry(1, reason="again"), 4: entry(3), 5: entry(1)},
    )
    try:
        assert staging.repeats() == [(3, 1), (5, 1)]
        assert staging.count == 3
    finally:
        staging.close()
    assert not staging.path.exists()  # the staging file is deleted


def test_chunks_insert_then_reapply_is_unchanged_then_changes_update(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"

    async def scenario() -> None:
        async with await Store.open(path) as store:
            # Row numbers with gaps (rejected rows), applied 4 row numbers at a time.
            first = stage(tmp_path, {n: entry(n) for n in range(1, 12) if n != 5})
            progress = [p async for p in _apply(store, first, chunk=4)]
            first.close()
            assert progress == [(4, 4, 0, 0), (7, 3, 0, 0), (10, 3, 0, 0)]
            seq = await store.last_change_seq()

            again = stage(tmp_path, {n: entry(n) for n in range(1, 12) if n != 5})
            assert [p async for p in _apply(store, again, chunk=100)] == [(10, 0, 0, 10)]
            again.close()
            assert await store.changes_since(seq) == []  # nothing identical is rewritten

            changed = stage(
                tmp_path,
                {
                    1: entry(1, reason="新原因"),
                    2: entry(2, uscc=uscc(99)),
                    3: entry(3),
                    4: entry(50),
                },
            )
            assert [p async for p in _apply(store, changed, chunk=100)] == [(4, 1, 2, 1)]
            changed.close()
            # The moved entry changes both subjects; the new one and the changed reason, one each.
            moved = sorted(u for _, u in await store.changes_since(seq))
            assert moved == sorted([uscc(1), uscc(2), uscc(99), uscc(50)])

    run(scenario())
    (reason,) = query(path, "SELECT reason FROM entries WHERE source_id = 'C1'")[0]
    assert reason == "新原因"
    details = query(
        path,
        "SELECT h.details FROM entry_history h JOIN entries e USING (entry_id) "
        "WHERE e.source_id = 'C1' AND h.note = 'updated'",
    )
    assert '"reason":"新原因"' in details[0][0]
    # Every entry once, whatever the chunks; the staging files are gone.
    assert query(path, "SELECT count(*) FROM entries")[0][0] == 11
    assert not list(tmp_path.glob("gateway-import-*.db"))


async def _apply(
    store: Store, staging: StagingFile, chunk: int
) -> AsyncIterator[tuple[int, int, int, int]]:
    """(rows so far, inserted, updated, unchanged) per chunk."""
    async for done, c in store.apply_staging(staging.seal(), "import:court.csv", chunk):
        yield done, c.inserted, c.updated, c.unchanged

"""Staged imports: a staging file applied by set operations, chunk by chunk, on both
backends (``open_store``), and the same files applied to both giving the same entries,
histories, change log and audit lines; the importer end to end on both."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import msgspec
import pytest

from gateway.demo import make_uscc
from gateway.importer import ImportOptions, import_file
from gateway.model import ENTRY_FIELDS, EntryInput
from gateway.store import Store
from gateway.store.pg import PgStore
from gateway.store.staging import StagingFile
from measures_catalog import Catalog
from tests.store.helpers import (
    AnyStore,
    OpenStore,
    comparable,
    entries_log,
    entry,
    fetch,
    integrity_error,
    run,
    uscc,
)


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


def test_chunks_insert_then_reapply_is_unchanged_then_changes_update(
    tmp_path: Path, open_store: OpenStore
) -> None:
    async def scenario() -> None:
        async with await open_store() as store:
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

            (reason,) = (await fetch(store, "SELECT reason FROM entries WHERE source_id = 'C1'"))[0]
            assert reason == "新原因"
            details = await fetch(
                store,
                "SELECT h.details FROM entry_history h JOIN entries e USING (entry_id) "
                "WHERE e.source_id = 'C1' AND h.note = 'updated'",
            )
            assert '"reason":"新原因"' in details[0][0]
            # Every entry once, whatever the chunks; one audit line per chunk that wrote.
            assert await fetch(store, "SELECT count(*) FROM entries") == [(11,)]
            audit = await store.audit(action="entries.upsert")
            assert [(a["target"], a["after"]) for a in audit] == [
                ("rows 1-4", {"inserted": 4, "updated": 0, "unchanged": 0}),
                ("rows 5-8", {"inserted": 3, "updated": 0, "unchanged": 0}),
                ("rows 9-12", {"inserted": 3, "updated": 0, "unchanged": 0}),
                ("rows 1-100", {"inserted": 1, "updated": 2, "unchanged": 1}),
            ]

    run(scenario())
    assert not list(tmp_path.glob("gateway-import-*.db"))  # the staging files are gone


def test_a_failing_chunk_leaves_the_chunks_before_it_and_a_second_run_finishes(
    tmp_path: Path, open_store: OpenStore
) -> None:
    async def scenario() -> None:
        async with await open_store() as store:
            # Row 5 repeats row 4's new key in the same chunk (its repeats not dropped).
            rows = {n: entry(n) for n in range(1, 5)} | {5: entry(4, reason="again"), 6: entry(6)}
            staging = stage(tmp_path, rows)
            seen: list[tuple[int, int, int, int]] = []

            async def apply() -> None:
                async for p in _apply(store, staging, chunk=3):
                    seen.append(p)

            with pytest.raises(integrity_error(store)):
                await apply()
            staging.close()
            assert seen == [(3, 3, 0, 0)]  # the first chunk, applied; the second, not at all
            assert await fetch(store, "SELECT count(*) FROM entries") == [(3,)]
            assert len(await store.audit(action="entries.upsert")) == 1

            fixed = stage(tmp_path, rows)
            assert fixed.repeats() == [(5, 4)]
            assert [p async for p in _apply(store, fixed, chunk=3)] == [
                (3, 0, 0, 3),
                (5, 2, 0, 0),
            ]
            fixed.close()
            assert await fetch(store, "SELECT count(*) FROM entries") == [(5,)]
            assert [a["target"] for a in await store.audit(action="entries.upsert")] == [
                "rows 1-3",
                "rows 4-6",
            ]

    run(scenario())


def test_an_entry_repeated_in_one_chunk_takes_its_last_changed_row(
    tmp_path: Path, open_store: OpenStore
) -> None:
    """An existing entry whose key a chunk repeats (a staging file whose repeats were not
    dropped) is updated by each changed row in turn: the last changed row wins, and every
    changed row has its history line (against the entry as the chunk found it)."""

    async def scenario() -> None:
        async with await open_store() as store:
            ids = (await store.upsert_entries([entry(1), entry(2)], "seed")).entry_ids
            rows = {
                1: entry(1, reason="甲"),
                2: entry(1, reason="乙"),
                3: entry(2, reason="丙"),
                4: entry(2),  # as the entry stands: unchanged, so 丙 stays
            }
            staging = stage(tmp_path, rows)
            assert [p async for p in _apply(store, staging, chunk=10)] == [(4, 0, 3, 1)]
            staging.close()
            first, second = [await store.get_entry(i) for i in ids]
            assert first is not None
            assert second is not None
            assert (first.reason, second.reason) == ("乙", "丙")
            notes = [(h.note, h.details.get("reason")) for h in await store.entry_history(ids[0])]
            assert notes == [("inserted", None), ("updated", "甲"), ("updated", "乙")]

    run(scenario())


def test_an_empty_staging_file_applies_nothing(tmp_path: Path, open_store: OpenStore) -> None:
    async def scenario() -> None:
        async with await open_store() as store:
            staging = stage(tmp_path, {})
            assert [p async for p in _apply(store, staging, chunk=10)] == []
            staging.close()
            assert await store.last_change_seq() == 0
            assert await store.audit() == []

    run(scenario())


# --- the same files on both -------------------------------------------------------------


async def import_transcript(store: AnyStore, directory: Path) -> str:
    """Staging files applied one after another (gaps and empty chunks, rows without a
    source_id, a re-import, changes of every kind including a move to another subject, an
    entry repeated in a chunk, a failing chunk and its re-run), then what they left."""
    said: list[Any] = []

    async def apply(rows: dict[int, EntryInput], chunk: int, drop_repeats: bool = True) -> None:
        staging = stage(directory, rows)
        progress: list[Any] = []
        try:
            if drop_repeats:
                said.append(staging.repeats())
            async for p in _apply(store, staging, chunk):
                progress.append(p)
        except integrity_error(store):
            progress.append("integrity error")
        finally:
            staging.close()
        said.append(progress)

    first = {n: entry(n) for n in range(1, 12) if n != 5}
    first |= {20: entry(20, source="manual", source_id=""), 21: entry(21, source_id="")}
    await apply(first, chunk=4)  # rows 13-16 make an empty chunk
    await apply(first, chunk=100)  # the keyed rows unchanged, the others new again
    await apply({1: entry(1), 2: entry(2), 30: entry(3)}, chunk=3)  # empty chunks between
    changes = {
        1: entry(1, reason="新原因"),
        2: entry(2, uscc=uscc(99)),
        3: entry(3, expires_on=None),
        4: entry(4, listed_on=date(2026, 4, 1), document_no="(2026)京01执新号"),
        5: entry(50),
        6: entry(6),
        7: entry(7, reason="一", subject_name="二"),
        8: entry(7, reason="三"),
    }
    await apply(changes, chunk=2)
    await apply({1: entry(8, reason="甲"), 2: entry(8, reason="乙")}, 10, drop_repeats=False)
    failing = {1: entry(60), 2: entry(61), 3: entry(62), 4: entry(70), 5: entry(70)}
    await apply(failing, chunk=3, drop_repeats=False)
    await apply(failing, chunk=3)
    said.append(await entries_log(store))
    return comparable(said)


def test_the_same_staging_files_give_the_same_entries_and_logs_on_both(
    tmp_path: Path, postgres_url: str
) -> None:
    async def scenario() -> tuple[str, str]:
        async with await Store.open(tmp_path / "gateway.db") as sqlite:
            on_sqlite = await import_transcript(sqlite, tmp_path)
        async with await PgStore.open(postgres_url) as postgres:
            on_postgres = await import_transcript(postgres, tmp_path)
        return on_sqlite, on_postgres

    on_sqlite, on_postgres = run(scenario())
    assert on_sqlite.count('"integrity error"') == 1
    assert '"reason_before"' in on_sqlite
    assert '"uscc_before"' in on_sqlite
    assert "<entry 18>" in on_sqlite  # 14 keyed entries, 2 rows without an id applied twice
    assert "<entry 19>" not in on_sqlite
    assert on_postgres == on_sqlite
    assert not list(tmp_path.glob("gateway-import-*.db"))


# --- the importer end to end ------------------------------------------------------------


def _csv(path: Path, rows: list[dict[str, str]]) -> Path:
    lines = [",".join(ENTRY_FIELDS)] + [",".join(r.get(f, "") for f in ENTRY_FIELDS) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _import_rows(codes: list[str], reason: str) -> list[dict[str, str]]:
    base = {
        "subject_name": "某某建设有限公司",
        "list_type": "court_defaulter",
        "authority": "北京市第一中级人民法院",
        "listed_on": "2026-03-01",
        "source": "court",
    }
    rows = [
        base | {"uscc": c, "reason": reason, "source_id": f"C-{i}"} for i, c in enumerate(codes)
    ]
    rows.insert(2, base | {"uscc": codes[0], "reason": reason, "source_id": "C-0"})  # repeated
    rows.insert(4, base | {"uscc": "not a code", "source_id": "X"})  # rejected
    return rows


async def import_twice(store: AnyStore, directory: Path, catalog: Catalog) -> str:
    """A file imported with its rejected rows left out, then a second version of it, with
    the staging file in ``directory``: the summaries and what the store then holds."""
    codes = [make_uscc(random.Random(n)) for n in range(7)]
    staging_dir = directory / "staging"
    staging_dir.mkdir(exist_ok=True)
    said: list[Any] = []
    for version, reason in enumerate(("未履行", "未履行", "仍未履行")):
        path = _csv(directory / f"court-{version}.csv", _import_rows(codes, reason))
        options = ImportOptions(allow_partial=True, chunk=3, staging_dir=staging_dir)
        said.append(await import_file(store, catalog, path, options))
        assert list(staging_dir.iterdir()) == []  # the staging file is gone
    said.append(await entries_log(store))
    return comparable(said)


def test_the_importer_gives_the_same_summaries_and_entries_on_both(
    tmp_path: Path, postgres_url: str, catalog: Catalog
) -> None:
    async def scenario() -> tuple[str, str]:
        async with await Store.open(tmp_path / "gateway.db") as sqlite:
            on_sqlite = await import_twice(sqlite, tmp_path, catalog)
        async with await PgStore.open(postgres_url) as postgres:
            on_postgres = await import_twice(postgres, tmp_path, catalog)
        return on_sqlite, on_postgres

    on_sqlite, on_postgres = run(scenario())
    summaries = msgspec.json.decode(on_sqlite)[:3]
    assert [
        (s["rows"], s["rejected_total"], s["inserted"], s["updated"], s["unchanged"], s["applied"])
        for s in summaries
    ] == [(9, 2, 7, 0, 0, True), (9, 2, 0, 0, 7, True), (9, 2, 0, 7, 0, True)]
    assert on_postgres == on_sqlite


def test_the_importer_stages_in_the_temporary_directory_for_postgresql(
    tmp_path: Path, postgres_url: str, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PostgreSQL store has no file to stage beside: without ``staging_dir`` the staging
    file goes to the system's temporary directory (``TMPDIR``), and is removed after."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setenv("TMPDIR", str(temporary))
    monkeypatch.setattr("tempfile.tempdir", None)  # read TMPDIR again
    seen: list[list[Path]] = []

    def progress(phase: str, rows: int, seconds: float) -> None:
        seen.append(sorted(temporary.glob("gateway-import-*.db")))

    async def scenario() -> None:
        async with await PgStore.open(postgres_url) as store:
            path = _csv(tmp_path / "court.csv", _import_rows([make_uscc(random.Random(1))], "x"))
            options = ImportOptions(allow_partial=True)
            summary = await import_file(store, catalog, path, options, progress)
            assert (summary.inserted, summary.applied) == (1, True)

    run(scenario())
    assert seen
    assert all(len(files) == 1 for files in seen)
    assert list(temporary.iterdir()) == []


async def _apply(
    store: AnyStore, staging: StagingFile, chunk: int
) -> AsyncIterator[tuple[int, int, int, int]]:
    """(rows so far, inserted, updated, unchanged) per chunk."""
    async for done, c in store.apply_staging(staging.seal(), "import:court.csv", chunk):
        yield done, c.inserted, c.updated, c.unchanged

"""What the snapshot loads: live entries and grades by subject, in chunks; grades.
On both backends (``open_store``)."""

from __future__ import annotations

from datetime import date

import pytest

from gateway.compact_build import CompactBuilder
from gateway.model import EntryRecord, Grade, ListEntry
from gateway.store import GradeResult, LiveRows
from tests.store.helpers import AnyStore, OpenStore, entry, fetch, run, uscc

GOOD = Grade("good", "浙江省公共信用评价", date(2026, 10, 1))


async def seed(store: AnyStore) -> dict[str, str]:
    """Subjects 1-6 in every interesting state; returns entry ids by name."""
    rows = {
        "1.active": entry(1, source_id="1a", listed_on=date(2026, 2, 1)),
        "1.repaired": entry(1, source_id="1b"),
        "1.revoked": entry(1, source_id="1c"),
        "1.expired": entry(1, source_id="1d", expires_on=date(2026, 6, 1)),
        "2.future": entry(2, source_id="2a", listed_on=date(2027, 1, 1)),
        "2.objection": entry(2, source_id="2b", listed_on=date(2026, 1, 1)),
        "3.repaired": entry(3, source_id="3a"),
        "5.active": entry(5, source_id="5a", list_type="tax_grade_a"),
        "6.revoked": entry(6, source_id="6a"),
    }
    result = await store.upsert_entries(list(rows.values()), "import")
    ids = dict(zip(rows, result.entry_ids, strict=True))
    for name in ("1.repaired", "3.repaired"):
        await store.repair(ids[name], date(2026, 11, 1), "修复1号", "clerk")
    for name in ("1.revoked", "6.revoked"):
        await store.revoke(ids[name], "撤销", "clerk")
    await store.open_objection(ids["2.objection"], date(2026, 11, 1), "异议", "clerk")
    await store.mark_expired(date(2026, 11, 22), "expiry")
    await store.put_grade(uscc(4), GOOD, "grades")
    await store.put_grade(uscc(5), Grade("excellent"), "grades")
    return ids


Subjects = list[tuple[str, list[EntryRecord], Grade | None]]


def subjects_of(chunks: list[LiveRows]) -> Subjects:
    """The chunks of the live scan as subjects, by code (the rows' order kept)."""
    found: dict[str, tuple[list[EntryRecord], Grade | None]] = {}
    for rows, grades in chunks:
        for row in rows:
            found.setdefault(row[0], ([], None))[0].append(row)
        for code, grade in grades:
            found[code] = (found.get(code, ([], None))[0], grade)
    return [(code, *found[code]) for code in sorted(found)]


def shape(subjects: Subjects) -> list[tuple[str, list[str], str | None]]:
    return [
        (u, [record[1] for record in records], grade.value if grade else None)
        for u, records, grade in subjects
    ]


def as_record(e: ListEntry) -> EntryRecord:
    """What the store's raw record of ``e`` holds (dates as ordinals)."""
    return (
        e.uscc,
        e.entry_id,
        e.list_type,
        e.status,
        e.listed_on.toordinal(),
        e.expires_on.toordinal() if e.expires_on else None,
        e.subject_name,
        e.authority,
        e.document_no,
    )


def test_live_rows_hold_exactly_the_live_entries_and_grades(open_store: OpenStore) -> None:
    async def scenario() -> None:
        async with await open_store() as store:
            ids = await seed(store)
            chunks = [chunk async for chunk in store.live_rows()]
            assert len(chunks) == 1
            subjects = subjects_of(chunks)
            assert sorted(shape(subjects)[1][1]) == sorted([ids["2.objection"], ids["2.future"]])
            # The packed snapshot orders a subject's entries by listed_on: the builder does.
            built = CompactBuilder()
            built.add_rows(*chunks[0])
            built.close_rows()
            packed = built.finish()
            two = packed.get(uscc(2))
            assert two is not None
            assert [e.entry_id for e in two.entries] == [ids["2.objection"], ids["2.future"]]
            assert shape(subjects) == [
                (uscc(1), [ids["1.active"]], None),
                # the future-dated entry is live (the engine dates it)
                (uscc(2), shape(subjects)[1][1], None),
                (uscc(4), [], "good"),  # a grade alone makes a subject live
                (uscc(5), [ids["5.active"]], "excellent"),
            ]
            records = sorted(subjects[1][1], key=lambda r: r[4])
            assert [r[3] for r in records] == ["objection_pending", "active"]
            assert subjects[2][2] == GOOD
            future = await store.get_entry(ids["2.future"])
            assert future is not None
            assert records[1] == as_record(future)

    run(scenario())


def test_subjects_returns_the_same_view_for_chosen_subjects(open_store: OpenStore) -> None:
    async def scenario() -> None:
        async with await open_store() as store:
            ids = await seed(store)
            chunks = [chunk async for chunk in store.live_rows()]
            everything = {u: (r, g) for u, r, g in subjects_of(chunks)}
            wanted = [uscc(5), uscc(3), uscc(1), "UNKNOWN", uscc(4), uscc(1)]
            found = await store.subjects(wanted)
            assert list(found) == [uscc(5), uscc(3), uscc(1), "UNKNOWN", uscc(4)]
            assert found[uscc(3)] == ((), None)  # repaired only: nothing live
            assert found["UNKNOWN"] == ((), None)
            for u in (uscc(1), uscc(4), uscc(5)):
                entries, grade = found[u]
                assert ([as_record(e) for e in entries], grade) == everything[u]
            assert [e.entry_id for e in found[uscc(1)][0]] == [ids["1.active"]]
            assert await store.subjects([]) == {}

    run(scenario())


@pytest.mark.parametrize("chunk", [1, 4, 5, 7, 30])
def test_live_rows_come_in_chunks_of_at_most_chunk(open_store: OpenStore, chunk: int) -> None:
    async def scenario() -> None:
        async with await open_store() as store:
            # 20 subjects: entries on 0-14 (two on the even ones), grades on 10-19.
            rows = [entry(n, source_id=f"{n}a") for n in range(15)]
            rows += [entry(n, source_id=f"{n}b") for n in range(0, 15, 2)]
            await store.upsert_entries(rows, "import")
            await store.put_grades([(uscc(n), GOOD) for n in range(10, 20)], "grades")

            chunks = [c async for c in store.live_rows(chunk=chunk)]
            assert all(len(rows) + len(grades) >= 1 for rows, grades in chunks)
            assert all(len(rows) <= chunk and len(grades) <= chunk for rows, grades in chunks)
            scanned = [row for r, _ in chunks for row in r]
            assert len(scanned) == 23
            assert [row[0] for row in scanned] == sorted(row[0] for row in scanned)
            for entries, grades in chunks:  # a chunk's grades are of codes up to its last
                if entries:
                    assert all(code <= entries[-1][0] for code, _ in grades)
            flat = subjects_of(chunks)
            assert [u for u, _, _ in flat] == [uscc(n) for n in range(20)]
            assert [len(e) for _, e, _ in flat] == [2 - n % 2 for n in range(15)] + [0] * 5
            assert [g is not None for _, _, g in flat] == [n >= 10 for n in range(20)]
            whole = [c async for c in store.live_rows(chunk=1000)]
            assert subjects_of(whole) == flat
            # Packed chunk by chunk (a subject's rows split between chunks), the snapshot
            # answers as one packed from the whole scan.
            split, at_once = CompactBuilder(), CompactBuilder()
            for entries, grades in chunks:
                split.add_rows(entries, grades)
            split.close_rows()
            for entries, grades in whole:
                at_once.add_rows(entries, grades)
            at_once.close_rows()
            assert split.entry_count == at_once.entry_count == 23
            one, other = split.finish(), at_once.finish()
            assert len(one) == len(other) == 20
            for n in range(20):
                assert one.get(uscc(n)) == other.get(uscc(n))

    run(scenario())


def test_live_rows_of_an_empty_store_and_bad_chunk(open_store: OpenStore) -> None:
    async def scenario() -> None:
        async with await open_store() as store:
            assert [c async for c in store.live_rows()] == []
            with pytest.raises(ValueError, match="chunk"):
                [c async for c in store.live_rows(chunk=0)]

    run(scenario())


def test_grades_upsert_with_history_and_are_validated(open_store: OpenStore) -> None:
    async def scenario() -> None:
        async with await open_store() as store:
            assert await store.get_grade(uscc(1)) is None
            assert await store.put_grade(uscc(1), GOOD, "a") == GradeResult(1, 0, 0)
            assert await store.put_grade(uscc(1), GOOD, "b") == GradeResult(0, 0, 1)
            assert await store.get_grade(uscc(1)) == GOOD
            poor = Grade("poor", "市场监管", None)
            result = await store.put_grades(
                [(uscc(1), poor), (uscc(2), GOOD), (uscc(2), GOOD)], "c"
            )
            assert result == GradeResult(1, 1, 1)
            assert await store.get_grade(uscc(1)) == poor
            with pytest.raises(ValueError, match="row 1: unknown grade 'A'"):
                await store.put_grades([(uscc(3), GOOD), (uscc(3), Grade("A"))], "d")  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="uscc is empty"):
                await store.put_grade("", GOOD, "d")
            assert await store.get_grade(uscc(3)) is None
            history = "SELECT uscc, value, actor FROM grade_history ORDER BY id"
            assert await fetch(store, history) == [
                (uscc(1), "good", "a"),
                (uscc(1), "poor", "c"),
                (uscc(2), "good", "c"),
            ]
            actors = await fetch(store, "SELECT actor FROM grades WHERE uscc = ?", uscc(1))
            assert actors == [("c",)]

    run(scenario())

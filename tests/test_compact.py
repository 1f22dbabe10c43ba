"""Packed subjects: every lookup answers what was packed; the snapshot's layers and their
compaction never change an answer."""

from __future__ import annotations

import asyncio
import doctest
import random
from datetime import date, timedelta

import pytest

from gateway import compact, compact_build
from gateway.compact import _record, as_checked
from gateway.compact_build import CompactBuilder, _Strings, merged_strings
from gateway.model import Grade, ListEntry
from gateway.snapshot import Snapshot, Subject
from gateway.store.rows import new_ids
from loadtest.datagen import make_uscc

AUTHORITIES = ("北京市第一中级人民法院", "国家税务总局上海市税务局", "天津市市场监督管理局")
LIST_TYPES = ("court_defaulter", "business_abnormal", "tax_grade_a", "focus")


def random_subject(rnd: random.Random, uscc: str, entry_id: str | None = None) -> Subject:
    entries = []
    for i in range(rnd.choice((0, 1, 1, 1, 2, 3))):
        listed = date(2020, 1, 1) + timedelta(days=rnd.randrange(2500))
        entries.append(
            ListEntry(
                entry_id=entry_id or new_ids(1)[0],
                uscc=uscc,
                list_type=rnd.choice(LIST_TYPES),
                listed_on=listed,
                expires_on=rnd.choice((None, listed + timedelta(days=rnd.randrange(1, 900)))),
                status=rnd.choice(("active", "objection_pending")),
                subject_name=f"某某{rnd.randrange(10**6)}有限公司",
                authority=rnd.choice(AUTHORITIES),
                document_no=f"(2026)京01执{i}{rnd.randrange(10**4)}号",
                reason="有履行能力而拒不履行",  # not kept: the store has it
            )
        )
    grade = None
    if not entries or rnd.random() < 0.2:
        grade = Grade(
            rnd.choice(("A", "B", "C", "D")),  # type: ignore[arg-type]
            "省信用中心",
            rnd.choice((None, date(2026, 1, 1))),
        )
    return Subject(tuple(entries), grade)


def expected(subject: Subject | None) -> Subject | None:
    if subject is None or (not subject.entries and subject.grade is None):
        return None
    return as_checked(subject)


def test_every_packed_subject_is_found_as_it_was_and_no_other_code_is() -> None:
    rnd = random.Random(7)
    codes = list(dict.fromkeys(make_uscc(rnd, "110105") for _ in range(5_000)))
    subjects = {code: random_subject(rnd, code) for code in codes[:4_000]}
    subjects["U-not-a-code"] = random_subject(rnd, "U-not-a-code", entry_id="legacy-id-1")
    builder = CompactBuilder()
    for code, subject in subjects.items():
        builder.add(code, subject.entries, subject.grade)
    packed = builder.finish()
    assert len(packed) == len(subjects)
    assert builder.entry_count == sum(len(s.entries) for s in subjects.values())
    for code, subject in subjects.items():
        assert packed.get(code) == expected(subject), code
        assert code in packed
    for code in codes[4_000:]:  # never packed
        assert packed.get(code) is None
        assert code not in packed
    assert packed.get("短") is None
    assert packed.get("９1350100M000100Y43") is None  # 18 characters, not 18 bytes


def test_codes_looked_up_again_answer_alike_and_a_base_remembers_a_bounded_number(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(compact, "RECENT_KEPT", 100)
    rnd = random.Random(5)
    codes = list(dict.fromkeys(make_uscc(rnd, "110105") for _ in range(600)))
    subjects = {code: random_subject(rnd, code) for code in codes[:300]}
    builder = CompactBuilder()
    for code, subject in subjects.items():
        builder.add(code, subject.entries, subject.grade)
    packed = builder.finish()
    for _ in range(3):  # the second and third time from what the base remembers
        for code in rnd.sample(codes, len(codes)):
            assert packed.get(code) == expected(subjects.get(code)), code
            assert len(packed._recent) <= 100
    assert packed.get(codes[0]) is packed.get(codes[0])  # remembered, not decoded again


def test_layers_and_compaction_answer_like_a_plain_dict_under_changes() -> None:
    rnd = random.Random(11)
    codes = list(dict.fromkeys(make_uscc(rnd, "110105") for _ in range(1_200)))
    model: dict[str, Subject | None] = {code: random_subject(rnd, code) for code in codes[:600]}
    snapshot = Snapshot(compact_after=150)

    def assert_same() -> None:
        for code in codes:
            assert snapshot.lookup(code) == expected(model.get(code)), code
        live = [s for s in (expected(model.get(c)) for c in codes) if s is not None]
        assert len(snapshot) == len(live)
        assert snapshot.entry_count == sum(len(s.entries) for s in live)

    async def scenario() -> int:
        for code, subject in model.items():
            assert subject is not None
            snapshot.load_subject(code, subject.entries, subject.grade)
        await snapshot.finish_load(1)
        assert_same()
        compactions = 0
        for version in range(2, 12):
            delta: dict[str, Subject | None] = {}
            for code in rnd.sample(codes, 60):
                delta[code] = None if rnd.random() < 0.3 else random_subject(rnd, code)
            await snapshot.apply(delta, version)
            model.update(delta)
            assert snapshot.version == version
            assert_same()  # also while a compaction runs in the background
            compactions += snapshot._compacting is not None
            await asyncio.sleep(0)
        while snapshot._compacting is not None:
            await asyncio.sleep(0)
        await snapshot.close()
        return compactions

    compactions = asyncio.run(scenario())
    assert compactions >= 1
    assert len(snapshot._changed) < 150  # the changed layer was packed into the base
    assert_same()


def test_every_kind_of_entry_id_reads_back_as_it_was_stored() -> None:
    ids = [
        new_ids(1)[0],  # 32 lower-case hex digits: packed as 16 bytes
        "0190ABCDEF0123456789ABCDEF012345",  # upper case: kept as text
        "0190 abcdef0123456789abcdef01234",  # 32 characters with a space
        "e-17",
    ]
    code = make_uscc(random.Random(1), "110105")
    entries = tuple(
        ListEntry(entry_id=i, uscc=code, list_type="focus", listed_on=date(2026, 1, n + 1))
        for n, i in enumerate(ids)
    )
    builder = CompactBuilder()
    builder.add(code, entries, None)
    found = builder.finish().get(code)
    assert found is not None
    assert [e.entry_id for e in found.entries] == ids


def test_subjects_packed_from_the_stores_scan_read_back_like_subjects_added_one_by_one() -> None:
    rnd = random.Random(11)
    codes = [make_uscc(rnd, "310115") for _ in range(300)] + ["N0T-A-USCC", "统一代码"]
    subjects = {code: random_subject(rnd, code) for code in codes}
    subjects[codes[0]] = random_subject(rnd, codes[0], entry_id="E-odd-id")
    for code, subject in subjects.items():  # a subject's entries in the store's order
        ordered = sorted(subject.entries, key=lambda e: (e.listed_on, e.entry_id))
        subjects[code] = Subject(tuple(ordered), subject.grade)
    # As the store's scan brings them: entry rows by code, grades by code, in chunks.
    rows = sorted((_record(e) for s in subjects.values() for e in s.entries), key=lambda r: r[0])
    grades = sorted((code, s.grade) for code, s in subjects.items() if s.grade is not None)
    one_by_one, at_once = CompactBuilder(), CompactBuilder()
    for code, subject in subjects.items():
        one_by_one.add(code, subject.entries, subject.grade)
    for start in range(0, len(rows), 50):
        part = rows[start : start + 50]
        last = part[-1][0] if start + 50 < len(rows) else "\uffff"
        at_once.add_rows(part, [g for g in grades if g[0] <= last])
        grades = [g for g in grades if g[0] > last]
    at_once.close_rows()
    assert at_once.entry_count == one_by_one.entry_count
    first, second = one_by_one.finish(), at_once.finish()
    assert len(first) == len(second)
    for code, subject in subjects.items():
        assert second.get(code) == first.get(code) == expected(subject)


def test_doctests() -> None:
    for module in (compact, compact_build):
        result = doctest.testmod(module)
        assert result.attempted > 0, module
        assert result.failed == 0, module


def test_strings_of_parts_keep_their_indexes_in_the_merged_table() -> None:
    """Three builders of a build in parts, each giving indexes apart from the others'."""
    parts = [_Strings(start=k, stride=3) for k in range(3)]
    met = [["court_defaulter", "福州市中级人民法院", "active"], ["active"], ["tax", "active", "x"]]
    given = [
        [part.index(value) for value in values] for part, values in zip(parts, met, strict=True)
    ]
    assert given == [[0, 3, 6], [1], [2, 5, 8]]
    merged = merged_strings([part.values for part in parts])
    for indexes, values in zip(given, met, strict=True):
        assert [merged[i] for i in indexes] == values
    assert merged[4] == merged[7] == ""  # indexes no part gave
    again = _Strings(merged)  # what the merged snapshot's later builders start from
    assert again.index("x") == 8
    assert again.index("new") == len(merged)

"""Properties that hold for every subject, whatever its entries, grade and matter."""

from __future__ import annotations

from datetime import date, timedelta

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

import measures_catalog
from gateway.engine import decide
from gateway.model import LIVE_STATUSES, Grade, ListEntry

CATALOG = measures_catalog.load()
TODAY = date(2026, 11, 22)
STATUSES = ["active", "objection_pending", "repaired", "revoked", "expired"]


@st.composite
def entries(draw: st.DrawFn) -> ListEntry:
    n = draw(st.integers(0, 10_000))
    listed = draw(st.integers(-1500, 30))
    return ListEntry(
        entry_id=f"e{n}",
        uscc="91110000600037341L",
        list_type=draw(st.sampled_from(sorted(CATALOG.list_types))),
        status=draw(st.sampled_from(STATUSES)),
        listed_on=TODAY + timedelta(days=listed),
        expires_on=draw(
            st.one_of(st.none(), st.integers(-30, 1500).map(lambda d: TODAY + timedelta(days=d)))
        ),
    )


subjects = st.tuples(
    st.lists(entries(), max_size=6, unique_by=lambda e: e.entry_id),
    st.one_of(st.none(), st.sampled_from(sorted(CATALOG.grades)).map(Grade)),  # type: ignore[arg-type]
    st.sampled_from(sorted(CATALOG.matter_types)),
    st.booleans(),
)


@settings(max_examples=400, deadline=None)
@given(subjects)
def test_invariants(subject: tuple[list[ListEntry], Grade | None, str, bool]) -> None:
    hits, grade, matter, commitment = subject
    decision = decide(hits, grade, matter, CATALOG, TODAY, commitment=commitment)
    live = [e for e in hits if e.status in LIVE_STATUSES and e.in_force_on(TODAY)]
    assert list(decision.hits) == live

    kinds_applied = {m.kind for m in decision.measures if m.state == "apply"}
    if any(CATALOG.list_types[e.list_type].kind == "black" for e in live):
        assert all(m.kind != "incentive" for m in decision.measures), "black beats red"
    assert decision.feedback_required == bool(kinds_applied)
    assert len({m.code for m in decision.measures}) == len(decision.measures)
    trigger_ids = (
        {e.entry_id for e in live} | {"commitment"} | ({f"grade:{grade.value}"} if grade else set())
    )
    for m in decision.measures:
        assert m.basis
        assert m.triggered_by
        assert set(m.triggered_by) <= trigger_ids
        if m.state == "suspended":
            pending = {e.entry_id for e in live if e.status == "objection_pending"}
            assert set(m.triggered_by) <= pending
    expected = (
        "restricted"
        if "punishment" in kinds_applied
        else "attention"
        if "management" in kinds_applied or any(m.kind == "punishment" for m in decision.measures)
        else "incentive"
        if "incentive" in kinds_applied
        else "clear"
    )
    assert decision.verdict == expected


@settings(max_examples=200, deadline=None)
@given(subjects, st.lists(entries(), max_size=4))
def test_dead_entries_change_nothing(
    subject: tuple[list[ListEntry], Grade | None, str, bool], extra: list[ListEntry]
) -> None:
    hits, grade, matter, commitment = subject
    dead = [e for e in extra if e.status not in LIVE_STATUSES or not e.in_force_on(TODAY)]
    before = decide(hits, grade, matter, CATALOG, TODAY, commitment=commitment)
    after = decide([*dead, *hits], grade, matter, CATALOG, TODAY, commitment=commitment)
    assert after == before


@settings(max_examples=200, deadline=None)
@given(subjects, subjects)
def test_remembered_shapes_answer_as_if_computed_afresh(
    first: tuple[list[ListEntry], Grade | None, str, bool],
    second: tuple[list[ListEntry], Grade | None, str, bool],
) -> None:
    for hits, grade, matter, commitment in (first, second):
        CATALOG.index[matter].memo.clear()
        fresh = decide(hits, grade, matter, CATALOG, TODAY, commitment=commitment)
        renamed = [msgspec.structs.replace(e, entry_id=e.entry_id + "-b") for e in hits]
        other = decide(renamed, grade, matter, CATALOG, TODAY, commitment=commitment)
        assert decide(hits, grade, matter, CATALOG, TODAY, commitment=commitment) == fresh
        assert [m.triggered_by for m in other.measures] == [
            tuple(t + "-b" if t.startswith("e") else t for t in m.triggered_by)
            for m in fresh.measures
        ]

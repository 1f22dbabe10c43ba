"""List entries: idempotent upsert, all or nothing, history and change log. On both
backends (``open_store``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pytest

from gateway.store import Store
from tests.store.helpers import (
    AnyStore,
    OpenStore,
    entry,
    execute_sql,
    fetch,
    integrity_error,
    run,
    uscc,
)


@dataclass
class Counts:
    entries: int
    history: int
    changes: int


async def counts(store: AnyStore) -> Counts:
    return Counts(
        (await fetch(store, "SELECT count(*) FROM entries"))[0][0],
        (await fetch(store, "SELECT count(*) FROM entry_history"))[0][0],
        (await fetch(store, "SELECT count(*) FROM changes"))[0][0],
    )


def test_insert_then_reimport_is_all_unchanged_with_no_writes(open_store: OpenStore) -> None:
    rows = [entry(n) for n in range(50)]

    async def scenario() -> None:
        async with await open_store() as store:
            first = await store.upsert_entries(rows, "import:court.csv")
            assert (first.inserted, first.updated, first.unchanged) == (50, 0, 0)
            assert len(set(first.entry_ids)) == 50
            seq = await store.last_change_seq()
            again = await store.upsert_entries(rows, "import:court.csv")
            assert (again.inserted, again.updated, again.unchanged) == (0, 0, 50)
            assert again.entry_ids == first.entry_ids  # same ids, input order
            assert await store.last_change_seq() == seq
            assert await store.changes_since(seq) == []

            stored = await store.get_entry(first.entry_ids[7])
            assert stored is not None
            assert stored.uscc == rows[7].uscc
            assert stored.document_no == rows[7].document_no
            assert stored.listed_on == date(2026, 3, 1)
            assert stored.expires_on == date(2028, 3, 1)
            assert (stored.source, stored.source_id, stored.status) == ("court", "C7", "active")
            assert await counts(store) == Counts(50, 50, 50)

    run(scenario())


def test_a_changed_row_is_updated_in_place_keeping_its_status(open_store: OpenStore) -> None:
    async def scenario() -> None:
        async with await open_store() as store:
            (entry_id,) = (await store.upsert_entries([entry(1)], "import")).entry_ids
            await store.open_objection(entry_id, date(2026, 11, 1), "异议", "clerk")
            seq = await store.last_change_seq()

            changed = entry(1, expires_on=date(2029, 1, 1), reason="新原因")
            result = await store.upsert_entries([changed, entry(2)], "import")
            assert (result.inserted, result.updated, result.unchanged) == (1, 1, 0)
            assert result.entry_ids[0] == entry_id

            stored = await store.get_entry(entry_id)
            assert stored is not None
            assert stored.expires_on == date(2029, 1, 1)
            assert stored.reason == "新原因"
            assert stored.status == "objection_pending"  # an import never changes the status

            last = (await store.entry_history(entry_id))[-1]
            assert (last.status, last.note, last.actor) == (
                "objection_pending",
                "updated",
                "import",
            )
            assert last.details == {
                "expires_on": "2029-01-01",
                "expires_on_before": "2028-03-01",
                "reason": "新原因",
                "reason_before": entry(1).reason,
            }
            assert [u for _, u in await store.changes_since(seq)] == [uscc(2), uscc(1)]

    run(scenario())


def test_moving_an_entry_to_another_subject_logs_a_change_for_both(open_store: OpenStore) -> None:
    async def scenario() -> None:
        async with await open_store() as store:
            await store.upsert_entries([entry(1)], "import")
            seq = await store.last_change_seq()
            await store.upsert_entries([entry(1, uscc=uscc(9))], "import")
            assert sorted(u for _, u in await store.changes_since(seq)) == [uscc(1), uscc(9)]
            assert (await store.subjects([uscc(1)]))[uscc(1)] == ((), None)

    run(scenario())


def test_rows_without_source_id_are_always_inserted(open_store: OpenStore) -> None:
    async def scenario() -> None:
        async with await open_store() as store:
            row = entry(1, source="manual", source_id="")
            first = await store.upsert_entries([row, row], "clerk")
            second = await store.upsert_entries([row], "clerk")
            assert (first.inserted, second.inserted) == (2, 1)
            assert len({*first.entry_ids, *second.entry_ids}) == 3
            assert all(e.source_id == "" for e in await store.subject_entries(uscc(1)))

    run(scenario())


def test_a_repeated_key_within_one_call_updates_what_it_inserted(open_store: OpenStore) -> None:

    async def scenario() -> None:
        async with await open_store() as store:
            rows = [entry(1), entry(1), entry(1, reason="更正")]
            result = await store.upsert_entries(rows, "import")
            assert (result.inserted, result.updated, result.unchanged) == (1, 1, 1)
            assert len(set(result.entry_ids)) == 1
            notes = [h.note for h in await store.entry_history(result.entry_ids[0])]
            assert notes == ["inserted", "updated"]
            stored = await store.get_entry(result.entry_ids[0])
            assert stored is not None
            assert stored.reason == "更正"
            assert await counts(store) == Counts(1, 2, 2)

    run(scenario())


def test_same_source_id_in_two_sources_are_two_entries(open_store: OpenStore) -> None:
    async def scenario() -> None:
        async with await open_store() as store:
            result = await store.upsert_entries(
                [entry(1, source="court"), entry(1, source="tax")], "import"
            )
            assert result.inserted == 2

    run(scenario())


def test_an_invalid_row_is_refused_before_anything_is_written(open_store: OpenStore) -> None:

    async def scenario() -> None:
        async with await open_store() as store:
            await store.upsert_entries([entry(1)], "import")
            bad = [
                entry(1, reason="changed"),
                entry(2),
                entry(3, expires_on=date(2020, 1, 1)),
            ]
            with pytest.raises(ValueError, match="row 2: expires_on 2020-01-01 is before"):
                await store.upsert_entries(bad, "import")
            with pytest.raises(ValueError, match="row 0: uscc is empty"):
                await store.upsert_entries([entry(4, uscc="")], "import")
            with pytest.raises(ValueError, match="row 1: list_type is empty"):
                await store.upsert_entries([entry(4), entry(5, list_type="")], "import")
            assert await counts(store) == Counts(1, 1, 1)

    run(scenario())


def test_a_row_failing_inside_the_database_rolls_back_the_whole_call(
    open_store: OpenStore,
) -> None:
    async def scenario() -> None:
        async with await open_store() as store:
            await store.upsert_entries([entry(1)], "import")
            assert await store.last_change_seq() == 1
            # A constraint the store does not check itself, raised by the database mid-batch.
            await execute_sql(store, refusing_trigger(store))
            rows = [entry(1, reason="changed"), entry(2), entry(666), entry(3)]
            with pytest.raises(integrity_error(store), match="refused by test"):
                await store.upsert_entries(rows, "import")
            # The connection is usable afterwards: no transaction was left open.
            assert (await store.upsert_entries([entry(4)], "import")).inserted == 1
            assert await counts(store) == Counts(2, 2, 2)
            reason = "SELECT reason FROM entries WHERE source_id = 'C1'"
            assert await fetch(store, reason) == [(entry(1).reason,)]
            others = "SELECT count(*) FROM entries WHERE source_id IN ('C2', 'C3')"
            assert await fetch(store, others) == [(0,)]

    run(scenario())


def refusing_trigger(store: AnyStore) -> str:
    """A trigger refusing subject 666's new entries as an integrity error, in the backend's
    dialect (PostgreSQL's ``restrict_violation`` is what the append-only triggers raise)."""
    if isinstance(store, Store):
        return (
            f"CREATE TRIGGER refuse BEFORE INSERT ON entries WHEN NEW.uscc = '{uscc(666)}' "
            "BEGIN SELECT RAISE(ABORT, 'refused by test'); END"
        )
    return (
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF NEW.uscc = '{uscc(666)}' THEN RAISE EXCEPTION USING MESSAGE = 'refused by test', "
        "ERRCODE = 'restrict_violation'; END IF; RETURN NEW; END $$; "
        "CREATE TRIGGER refuse BEFORE INSERT ON entries FOR EACH ROW EXECUTE FUNCTION refuse()"
    )


@pytest.mark.parametrize(
    ("uscc_", "expires_on", "status"),
    [
        pytest.param("X", None, "gone", id="unknown status"),
        pytest.param("X", date(2025, 1, 1), "active", id="ends before it starts"),
        pytest.param("", None, "active", id="empty uscc"),
    ],
)
def test_the_database_refuses_what_the_store_would(
    open_store: OpenStore, uscc_: str, expires_on: date | None, status: str
) -> None:
    async def scenario() -> None:
        async with await open_store() as store:
            # SQLite: "CHECK constraint failed"; PostgreSQL: "violates check constraint".
            with pytest.raises(integrity_error(store), match=r"(?i)check constraint"):
                await execute_sql(
                    store,
                    "INSERT INTO entries (entry_id, uscc, list_type, listed_on, expires_on, "
                    "status, created_at, updated_at) VALUES ('e1', ?, 'court_defaulter', ?, ?, "
                    "?, 't', 't')",
                    uscc_,
                    date(2026, 1, 1),
                    expires_on,
                    status,
                )

    run(scenario())

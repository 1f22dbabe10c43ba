"""The status lifecycle of an entry, its append-only history and the change log. On both
backends (``open_store``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date

import pytest

from gateway.model import Grade, ListEntry
from gateway.store import EntryNotFound, InvalidTransition
from tests.store.helpers import (
    TODAY,
    AnyStore,
    OpenStore,
    entry,
    execute_sql,
    fetch,
    integrity_error,
    run,
    uscc,
)

Act = Callable[[AnyStore, str], Awaitable[ListEntry]]


def objection(store: AnyStore, entry_id: str) -> Awaitable[ListEntry]:
    return store.open_objection(entry_id, date(2026, 11, 1), "企业提出异议", "clerk")


def upheld(store: AnyStore, entry_id: str) -> Awaitable[ListEntry]:
    return store.resolve_objection(entry_id, True, "认定有误", "reviewer")


def not_upheld(store: AnyStore, entry_id: str) -> Awaitable[ListEntry]:
    return store.resolve_objection(entry_id, False, "异议不成立", "reviewer")


def repair(store: AnyStore, entry_id: str) -> Awaitable[ListEntry]:
    return store.repair(entry_id, date(2026, 11, 5), "京发改信修〔2026〕12号", "clerk")


def revoke(store: AnyStore, entry_id: str) -> Awaitable[ListEntry]:
    return store.revoke(entry_id, "撤销列入决定", "clerk")


#: (steps to reach the starting status, the act, the status after it)
VALID = [
    pytest.param([], objection, "objection_pending", id="active -> objection"),
    pytest.param([objection], upheld, "revoked", id="objection upheld -> revoked"),
    pytest.param([objection], not_upheld, "active", id="objection not upheld -> active"),
    pytest.param([], repair, "repaired", id="active -> repaired"),
    pytest.param([objection], repair, "repaired", id="objection -> repaired"),
    pytest.param([], revoke, "revoked", id="active -> revoked"),
    pytest.param([objection], revoke, "revoked", id="objection -> revoked"),
]

INVALID = [
    pytest.param([objection], objection, "objection_pending", id="objection twice"),
    pytest.param([], upheld, "active", id="resolve without objection"),
    pytest.param([], not_upheld, "active", id="reject without objection"),
    pytest.param([repair], objection, "repaired", id="objection after repair"),
    pytest.param([repair], repair, "repaired", id="repair twice"),
    pytest.param([repair], revoke, "repaired", id="revoke after repair"),
    pytest.param([revoke], objection, "revoked", id="objection after revoke"),
    pytest.param([revoke], repair, "revoked", id="repair after revoke"),
    pytest.param([revoke], upheld, "revoked", id="resolve after revoke"),
]


@pytest.mark.parametrize(("before", "act", "after"), VALID)
def test_valid_transitions(open_store: OpenStore, before: list[Act], act: Act, after: str) -> None:

    async def scenario() -> None:
        async with await open_store() as store:
            (entry_id,) = (await store.upsert_entries([entry(1)], "import")).entry_ids
            for step in before:
                await step(store, entry_id)
            seq = await store.last_change_seq()
            history_before = await store.entry_history(entry_id)

            updated = await act(store, entry_id)

            assert updated.status == after
            assert await store.get_entry(entry_id) == updated
            history = await store.entry_history(entry_id)
            assert history[:-1] == history_before  # appended, nothing rewritten
            assert history[-1].status == after
            assert await store.changes_since(seq) == [(seq + 1, uscc(1))]

    run(scenario())


@pytest.mark.parametrize(("before", "act", "current"), INVALID)
def test_invalid_transitions_change_nothing(
    open_store: OpenStore, before: list[Act], act: Act, current: str
) -> None:
    async def scenario() -> None:
        async with await open_store() as store:
            (entry_id,) = (await store.upsert_entries([entry(1)], "import")).entry_ids
            for step in before:
                await step(store, entry_id)
            seq = await store.last_change_seq()
            history = await store.entry_history(entry_id)
            with pytest.raises(InvalidTransition) as caught:
                await act(store, entry_id)
            assert caught.value.entry_id == entry_id
            assert caught.value.current == current
            assert repr(current) in str(caught.value)
            assert entry_id in str(caught.value)
            stored = await store.get_entry(entry_id)
            assert stored is not None
            assert stored.status == current
            assert await store.entry_history(entry_id) == history
            assert await store.last_change_seq() == seq

    run(scenario())


def test_unknown_entries_are_reported(open_store: OpenStore) -> None:
    async def scenario() -> None:
        async with await open_store() as store:
            for act in (objection, upheld, repair, revoke):
                with pytest.raises(EntryNotFound, match="nope"):
                    await act(store, "nope")
            assert await store.get_entry("nope") is None
            assert await store.entry_history("nope") == []

    run(scenario())


def test_history_is_complete_with_actors_notes_and_details(open_store: OpenStore) -> None:
    async def scenario() -> None:
        async with await open_store() as store:
            (entry_id,) = (await store.upsert_entries([entry(1)], "import:court")).entry_ids
            await objection(store, entry_id)
            await not_upheld(store, entry_id)
            await store.upsert_entries([entry(1, basis="新依据")], "import:court")
            await repair(store, entry_id)

            history = await store.entry_history(entry_id)
            assert [(h.status, h.actor, h.note) for h in history] == [
                ("active", "import:court", "inserted"),
                ("objection_pending", "clerk", "企业提出异议"),
                ("active", "reviewer", "异议不成立"),
                ("active", "import:court", "updated"),
                ("repaired", "clerk", ""),
            ]
            assert history[1].details == {"opened_on": "2026-11-01"}
            assert history[2].details == {"upheld": "false"}
            assert history[4].details == {
                "repaired_on": "2026-11-05",
                "decision_no": "京发改信修〔2026〕12号",
            }
            assert all(h.entry_id == entry_id for h in history)
            stamps = [h.changed_at for h in history]
            assert stamps == sorted(stamps)
            assert all("T" in s and s[-6] in "+-" for s in stamps)

    run(scenario())


def test_history_and_change_log_cannot_be_rewritten(open_store: OpenStore) -> None:
    async def scenario() -> None:
        async with await open_store() as store:
            await store.upsert_entries([entry(1)], "import")
            for statement in (
                "UPDATE entry_history SET note = 'forged'",
                "DELETE FROM entry_history",
                "UPDATE changes SET uscc = 'X'",
                "UPDATE grade_history SET value = 'excellent'",
                "DELETE FROM grade_history",
            ):
                if "grade_history" in statement:
                    await execute_sql(
                        store,
                        "INSERT INTO grade_history (uscc, value, changed_at, actor) "
                        "VALUES ('X', 'good', 't', 'a')",
                    )
                with pytest.raises(integrity_error(store), match="append-only"):
                    await execute_sql(store, statement)
            assert await fetch(store, "SELECT note FROM entry_history") == [("inserted",)]

    run(scenario())


def test_mark_expired_expires_only_active_entries_past_their_end(open_store: OpenStore) -> None:
    async def scenario() -> None:
        async with await open_store() as store:
            rows = [
                entry(1, expires_on=date(2026, 11, 21)),  # ended yesterday: expires
                entry(2, expires_on=TODAY),  # in force through today: stays
                entry(3, expires_on=None),  # no end: stays
                entry(4, expires_on=date(2026, 10, 1)),  # ended, but repaired: stays repaired
                entry(5, expires_on=date(2026, 10, 1)),  # ended, under objection: not touched
            ]
            ids = (await store.upsert_entries(rows, "import")).entry_ids
            await repair(store, ids[3])
            await objection(store, ids[4])
            seq = await store.last_change_seq()

            assert await store.mark_expired(TODAY, "expiry-job") == 1
            assert await store.mark_expired(TODAY, "expiry-job") == 0  # idempotent
            with pytest.raises(ValueError, match="batch"):
                await store.mark_expired(TODAY, "expiry-job", batch=0)

            statuses = [(await store.get_entry(i)).status for i in ids]  # type: ignore[union-attr]
            assert statuses == ["expired", "active", "active", "repaired", "objection_pending"]
            last = (await store.entry_history(ids[0]))[-1]
            assert (last.status, last.actor) == ("expired", "expiry-job")
            assert last.details == {"expires_on": "2026-11-21", "today": "2026-11-22"}
            assert await store.changes_since(seq) == [(seq + 1, uscc(1))]
            with pytest.raises(InvalidTransition):
                await repair(store, ids[0])

    run(scenario())


def test_every_mutation_appends_one_change_with_increasing_seq(open_store: OpenStore) -> None:

    async def scenario() -> None:
        async with await open_store() as store:
            ids = (await store.upsert_entries([entry(n) for n in range(3)], "i")).entry_ids  # 3
            await store.upsert_entries([entry(n) for n in range(3)], "i")  # 0
            await store.upsert_entries([entry(0, reason="x")], "i")  # 1
            await objection(store, ids[1])  # 1
            await not_upheld(store, ids[1])  # 1
            await revoke(store, ids[2])  # 1
            await store.put_grade(uscc(5), Grade("good", "zj", date(2026, 10, 1)), "g")  # 1
            await store.put_grade(uscc(5), Grade("good", "zj", date(2026, 10, 1)), "g")  # 0
            await store.put_grade(uscc(5), Grade("fair", "zj", date(2026, 11, 1)), "g")  # 1
            changes = await store.changes_since(0)
            assert [s for s, _ in changes] == list(range(1, 10))
            assert await store.last_change_seq() == 9
            assert await store.changes_since(0, limit=4) == changes[:4]
            assert await store.changes_since(8) == changes[8:]
            kinds = "SELECT kind, count(*) FROM changes GROUP BY kind ORDER BY kind"
            assert await fetch(store, kinds) == [("entry", 7), ("grade", 2)]

    run(scenario())


def test_mark_expired_works_in_batches(open_store: OpenStore) -> None:

    async def scenario() -> None:
        async with await open_store() as store:
            rows = [
                entry(n, listed_on=date(2025, 1, 1), expires_on=date(2026, 1, 1 + n % 28))
                for n in range(23)
            ]
            rows.append(entry(99, expires_on=None))
            await store.upsert_entries(rows, "import")
            assert await store.mark_expired(TODAY, "expiry-job", batch=5) == 23
            assert await store.mark_expired(TODAY, "expiry-job", batch=5) == 0
            assert [e.status for e in await store.subject_entries(uscc(99))] == ["active"]
            expired = "SELECT count(*) FROM entry_history WHERE status = 'expired'"
            assert await fetch(store, expired) == [(23,)]

    run(scenario())

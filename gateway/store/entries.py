"""List entries (SQL): idempotent upsert and reads (the lifecycle is in ``lifecycle``).

:func:`upsert` runs inside one ``BEGIN IMMEDIATE`` transaction opened by
:class:`~gateway.store.Store`, and appends in that transaction a row to
``entry_history`` (append-only) and to ``changes`` (the feed's log) for each
mutation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

import aiosqlite
import msgspec

from gateway.model import EntryInput, ListEntry, StatusChange
from gateway.store import audit
from gateway.store.rows import (
    ENTRY_COLUMNS,
    entry_from_row,
    new_ids,
    now_iso,
    status_change_from_row,
    to_json,
)
from gateway.store.staging import (
    CANONICAL_COLUMNS,
    STAGED_COLUMNS,
    create_staged,
    insert_staged,
    staged_row,
)

_ENTRY_COLUMNS: Final = ", ".join(STAGED_COLUMNS[1:])
_ASSIGN: Final = ", ".join(f"{name} = ?" for name in CANONICAL_COLUMNS)
_UPDATE_ENTRY: Final = f"UPDATE entries SET {_ASSIGN}, updated_at = ? WHERE entry_id = ?"
INSERT_HISTORY: Final = (
    "INSERT INTO entry_history (entry_id, status, changed_at, actor, note, details) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
INSERT_CHANGE: Final = "INSERT INTO changes (uscc, kind, ref, at, actor) VALUES (?, ?, ?, ?, ?)"
_SAME: Final = " AND ".join(f"e.{c} IS s.{c}" for c in CANONICAL_COLUMNS)
_MATCH: Final = "e.source = s.source AND e.source_id = s.source_id"


def _matched(schema: str) -> str:
    """How many staged rows of a range match an existing entry by (source, source_id)."""
    return (
        f"SELECT count(*) FROM {schema}.staged s JOIN entries e ON {_MATCH} "
        "WHERE s.row BETWEEN ? AND ?"
    )


def _changed(schema: str) -> str:
    """Staged rows of a range whose existing entry differs: its id, status, before, after."""
    before = ", ".join(f"e.{c}" for c in CANONICAL_COLUMNS)
    after = ", ".join(f"s.{c}" for c in CANONICAL_COLUMNS)
    return (
        f"SELECT e.entry_id, e.status, {before}, {after} FROM {schema}.staged s "
        f"JOIN entries e ON {_MATCH} WHERE s.row BETWEEN ? AND ? AND NOT ({_SAME}) "
        "ORDER BY s.row"
    )


def _insert_new(schema: str) -> str:
    """Staged rows of a range that match no entry, inserted as new active entries."""
    values = ", ".join(f"s.{c}" for c in STAGED_COLUMNS[1:])
    return (
        f"INSERT INTO entries ({_ENTRY_COLUMNS}, status, created_at, updated_at) "
        f"SELECT {values}, 'active', ?1, ?1 FROM {schema}.staged s "
        "WHERE s.row BETWEEN ?2 AND ?3 AND (s.source_id IS NULL OR NOT EXISTS "
        f"(SELECT 1 FROM entries e WHERE {_MATCH})) ORDER BY s.row"
    )


# History and change rows of the entries just inserted (rowid > the max before), in one
# statement each.
_HISTORY_OF_NEW: Final = (
    "INSERT INTO entry_history (entry_id, status, changed_at, actor, note, details) "
    "SELECT entry_id, 'active', ?, ?, 'inserted', '{}' FROM entries WHERE rowid > ? ORDER BY rowid"
)
_CHANGES_OF_NEW: Final = (
    "INSERT INTO changes (uscc, kind, ref, at, actor) "
    "SELECT uscc, 'entry', entry_id, ?, ? FROM entries WHERE rowid > ? ORDER BY rowid"
)


class UpsertCounts(msgspec.Struct, frozen=True):
    """What applying staged rows did."""

    inserted: int
    updated: int
    unchanged: int


class UpsertResult(msgspec.Struct, frozen=True):
    """What :meth:`Store.upsert_entries` did; ``entry_ids`` in input order."""

    inserted: int
    updated: int
    unchanged: int
    entry_ids: list[str]


async def apply_staged(
    db: aiosqlite.Connection,
    schema: str,
    first: int,
    last: int,
    actor: str,
    audited: bool = False,
) -> UpsertCounts:
    """Apply the staged rows numbered ``first`` to ``last`` (each (source, source_id) once).

    New keys (and rows without a source_id) become active entries; changed ones update
    their entry's fields, never its status, with the differences in its history;
    identical ones are left alone. Every mutation appends to ``changes``.
    """
    now = now_iso()
    span = (first, last)
    matched = next(iter(await db.execute_fetchall(_matched(schema), span)))[0]
    changed = list(await db.execute_fetchall(_changed(schema), span))
    updates = [(*row[2 + len(CANONICAL_COLUMNS) :], now, row[0]) for row in changed]
    history, changes = changed_rows(changed, now, actor)
    # Matches are known before anything is inserted: a new entry never counts as one.
    rows_before = await db.execute_fetchall("SELECT coalesce(max(rowid), 0) FROM entries")
    last_rowid = next(iter(rows_before))[0]
    cursor = await db.execute(_insert_new(schema), (now, *span))
    inserted = cursor.rowcount
    if inserted:
        await db.execute(_HISTORY_OF_NEW, (now, actor, last_rowid))
        await db.execute(_CHANGES_OF_NEW, (now, actor, last_rowid))
    if updates:
        await db.executemany(_UPDATE_ENTRY, updates)
        await db.executemany(INSERT_HISTORY, history)
        await db.executemany(INSERT_CHANGE, changes)
    counts = UpsertCounts(inserted, len(updates), matched - len(updates))
    if audited and (counts.inserted or counts.updated):
        await record_upsert(db, actor, f"rows {first}-{last}", counts)
    return counts


def changed_rows(
    changed: Iterable[Sequence[Any]], now: str, actor: str
) -> tuple[list[tuple[str, str, str, str, str, str]], list[tuple[str, str, str, str, str]]]:
    """The ``entry_history`` and ``changes`` rows of entries whose staged row differs.

    ``changed`` holds ``(entry_id, status, *before, *after)``, the values of
    :data:`~gateway.store.staging.CANONICAL_COLUMNS` as staged (dates as ISO text), in row
    order. Each gets an ``updated`` history line with the fields that differ (new value
    and ``<field>_before``) and a change of its subject, or of both subjects when the
    entry moves to another. Shared by both backends, so that their details are the same.
    """
    width = len(CANONICAL_COLUMNS)
    history: list[tuple[str, str, str, str, str, str]] = []
    changes: list[tuple[str, str, str, str, str]] = []
    for entry_id, status, *values in changed:
        before, after = values[:width], values[width:]
        details: dict[str, str] = {}
        for name, old, new in zip(CANONICAL_COLUMNS, before, after, strict=True):
            if old != new:
                details[name] = new or ""
                details[f"{name}_before"] = old or ""
        history.append((entry_id, status, now, actor, "updated", to_json(details)))
        if before[0] != after[0]:  # the entry moves to another subject: both change
            changes.append((before[0], "entry", entry_id, now, actor))
        changes.append((after[0], "entry", entry_id, now, actor))
    return history, changes


async def record_upsert(
    db: aiosqlite.Connection, actor: str, target: str, counts: UpsertCounts
) -> None:
    """One audit line for a set of entries applied (each entry's own history has the
    details): what was inserted, updated and left alone."""
    after = {"inserted": counts.inserted, "updated": counts.updated, "unchanged": counts.unchanged}
    await audit.record(db, actor, "entries.upsert", target, None, after)


def upsert_rounds(rows: Sequence[EntryInput]) -> list[list[int]]:
    """Row indexes in rounds: a key's n-th occurrence goes to round n, so that each round
    holds a key at most once and later rows apply after earlier ones."""
    rounds: list[list[int]] = []
    seen: dict[tuple[str, str], int] = {}
    for index, row in enumerate(rows):
        turn = 0
        if row.source_id:
            turn = seen[row.source, row.source_id] = seen.get((row.source, row.source_id), -1) + 1
        if turn == len(rounds):
            rounds.append([])
        rounds[turn].append(index)
    return rounds


async def upsert(db: aiosqlite.Connection, rows: Sequence[EntryInput], actor: str) -> UpsertResult:
    """Insert new entries, update changed ones (never their status), skip identical ones.

    Rows are staged in a TEMP table and applied by :func:`apply_staged`. A row repeating
    an earlier row's (source, source_id) in the same call updates (or leaves alone) what
    that row inserted.
    """
    staged = [
        staged_row(index, entry_id, row)
        for index, (entry_id, row) in enumerate(zip(new_ids(len(rows)), rows, strict=True))
    ]
    await db.execute(create_staged("temp"))
    ids: list[str] = [""] * len(rows)
    inserted = updated = unchanged = 0
    for indexes in upsert_rounds(rows):
        await db.execute("DELETE FROM temp.staged")
        await db.executemany(insert_staged("temp"), [staged[i] for i in indexes])
        counts = await apply_staged(db, "temp", 0, len(rows), actor)
        inserted += counts.inserted
        updated += counts.updated
        unchanged += counts.unchanged
        for index, entry_id in await db.execute_fetchall(_STAGED_IDS):
            ids[index] = entry_id
    await db.execute("DELETE FROM temp.staged")
    if inserted or updated:
        counts = UpsertCounts(inserted, updated, unchanged)
        await record_upsert(db, actor, f"{len(rows)} rows", counts)
    return UpsertResult(inserted, updated, unchanged, ids)


# Each staged row's entry: the existing one its key matches, else the one it inserted.
_STAGED_IDS: Final = (
    "SELECT s.row, coalesce(e.entry_id, s.entry_id) FROM temp.staged s "
    f"LEFT JOIN entries e ON {_MATCH}"
)


async def get(db: aiosqlite.Connection, entry_id: str) -> ListEntry | None:
    rows = list(
        await db.execute_fetchall(
            f"SELECT {ENTRY_COLUMNS} FROM entries WHERE entry_id = ?", (entry_id,)
        )
    )
    return entry_from_row(rows[0]) if rows else None


async def history(db: aiosqlite.Connection, entry_id: str) -> list[StatusChange]:
    rows = await db.execute_fetchall(
        "SELECT entry_id, status, changed_at, actor, note, details FROM entry_history "
        "WHERE entry_id = ? ORDER BY id",
        (entry_id,),
    )
    return [status_change_from_row(r) for r in rows]


async def of_subject(db: aiosqlite.Connection, uscc: str) -> list[ListEntry]:
    rows = await db.execute_fetchall(
        f"SELECT {ENTRY_COLUMNS} FROM entries WHERE uscc = ? ORDER BY listed_on, entry_id",
        (uscc,),
    )
    return [entry_from_row(r) for r in rows]

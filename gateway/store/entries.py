"""List entries (SQL): idempotent upsert and reads (the lifecycle is in ``lifecycle``).

:func:`upsert` runs inside one ``BEGIN IMMEDIATE`` transaction opened by
:class:`~gateway.store.Store`, and appends in that transaction a row to
``entry_history`` (append-only) and to ``changes`` (the feed's log) for each
mutation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, TypeAlias

import aiosqlite
import msgspec

from gateway.model import ACTIVE, ENTRY_FIELDS, EntryInput, ListEntry, StatusChange
from gateway.store.rows import (
    ENTRY_COLUMNS,
    entry_from_row,
    new_ids,
    now_iso,
    status_change_from_row,
    to_json,
)

#: The fields an import may change, in the order of :func:`_canonical`.
CANONICAL_FIELDS: Final = ENTRY_FIELDS[:-2]  # all but source and source_id
_ASSIGN: Final = ", ".join(f"{name} = ?" for name in CANONICAL_FIELDS)

_INSERT_ENTRY: Final = (
    "INSERT INTO entries (entry_id, uscc, subject_name, list_type, authority, reason, basis, "
    "document_no, listed_on, expires_on, status, source, source_id, created_at, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'active', ?, ?, ?, ?)"
)
_UPDATE_ENTRY: Final = f"UPDATE entries SET {_ASSIGN}, updated_at = ? WHERE entry_id = ?"
INSERT_HISTORY: Final = (
    "INSERT INTO entry_history (entry_id, status, changed_at, actor, note, details) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
INSERT_CHANGE: Final = "INSERT INTO changes (uscc, kind, ref, at, actor) VALUES (?, ?, ?, ?, ?)"
# (source, source_id) pairs as one JSON parameter: no limit on bound variables.
# The ids of one source as one JSON parameter: no limit on the number of bound variables.
_FIND_BY_SOURCE: Final = (
    "SELECT source_id, entry_id, status, uscc, subject_name, list_type, authority, reason, "
    "basis, document_no, listed_on, expires_on FROM entries "
    "WHERE source = ? AND source_id IN (SELECT value FROM json_each(?))"
)
# History and change rows of the entries just inserted (rowid > the max before), in one
# statement each: no per-row round trip through Python.
_HISTORY_OF_NEW: Final = (
    "INSERT INTO entry_history (entry_id, status, changed_at, actor, note, details) "
    "SELECT entry_id, 'active', ?, ?, 'inserted', '{}' FROM entries WHERE rowid > ? ORDER BY rowid"
)
_CHANGES_OF_NEW: Final = (
    "INSERT INTO changes (uscc, kind, ref, at, actor) "
    "SELECT uscc, 'entry', entry_id, ?, ? FROM entries WHERE rowid > ? ORDER BY rowid"
)


class UpsertResult(msgspec.Struct, frozen=True):
    """What :meth:`Store.upsert_entries` did; ``entry_ids`` in input order."""

    inserted: int
    updated: int
    unchanged: int
    entry_ids: list[str]


#: What an upsert knows of an entry with a (source, source_id): (entry_id, status, canonical).
_Known: TypeAlias = tuple[str, str, tuple[str | None, ...]]


def _canonical(index: int, row: EntryInput) -> tuple[str | None, ...]:
    """The row's comparable fields as stored; ValueError for what the schema would refuse."""
    listed_on, expires_on = row.listed_on, row.expires_on
    if not row.uscc:
        raise ValueError(f"row {index}: uscc is empty")
    if not row.list_type:
        raise ValueError(f"row {index}: list_type is empty")
    if expires_on is not None and expires_on < listed_on:
        raise ValueError(f"row {index}: expires_on {expires_on} is before listed_on {listed_on}")
    return (
        row.uscc,
        row.subject_name,
        row.list_type,
        row.authority,
        row.reason,
        row.basis,
        row.document_no,
        listed_on.isoformat(),
        None if expires_on is None else expires_on.isoformat(),
    )


async def _find_existing(
    db: aiosqlite.Connection, rows: Sequence[EntryInput]
) -> dict[tuple[str, str], _Known]:
    by_source: dict[str, set[str]] = {}
    for row in rows:
        if row.source_id:
            by_source.setdefault(row.source, set()).add(row.source_id)
    known: dict[tuple[str, str], _Known] = {}
    for source, ids in by_source.items():
        found = await db.execute_fetchall(_FIND_BY_SOURCE, (source, to_json(list(ids))))
        for r in found:
            known[source, r[0]] = (r[1], r[2], tuple(r[3:12]))
    return known


async def upsert(db: aiosqlite.Connection, rows: Sequence[EntryInput], actor: str) -> UpsertResult:
    """Insert new entries, update changed ones (never their status), skip identical ones.

    Rows are taken in order: a row repeating an earlier row's (source, source_id)
    in the same call updates (or leaves alone) what that row inserted.
    """
    canonicals = [_canonical(index, row) for index, row in enumerate(rows)]
    known = await _find_existing(db, rows)
    now = now_iso()
    fresh_ids = iter(new_ids(len(rows)))
    inserts: list[tuple[Any, ...]] = []
    updates: list[tuple[Any, ...]] = []
    update_history: list[tuple[Any, ...]] = []
    update_changes: list[tuple[Any, ...]] = []
    entry_ids: list[str] = []
    updated = unchanged = 0
    for row, canonical in zip(rows, canonicals, strict=True):
        key = (row.source, row.source_id) if row.source_id else None
        current = known.get(key) if key is not None else None
        if current is None:
            entry_id = next(fresh_ids)
            inserts.append((entry_id, *canonical, row.source, row.source_id or None, now, now))
            if key is not None:
                known[key] = (entry_id, ACTIVE, canonical)
        else:
            entry_id, status, before = current
            if before == canonical:
                unchanged += 1
            else:
                details: dict[str, str] = {}
                for name, old, new in zip(CANONICAL_FIELDS, before, canonical, strict=True):
                    if old != new:
                        details[name] = new or ""
                        details[f"{name}_before"] = old or ""
                updates.append((*canonical, now, entry_id))
                update_history.append((entry_id, status, now, actor, "updated", to_json(details)))
                if before[0] != row.uscc:  # the entry moves to another subject: both change
                    update_changes.append((before[0], "entry", entry_id, now, actor))
                update_changes.append((row.uscc, "entry", entry_id, now, actor))
                assert key is not None  # only keyed rows can match an existing entry
                known[key] = (entry_id, status, canonical)
                updated += 1
        entry_ids.append(entry_id)
    if inserts:
        rows_before = await db.execute_fetchall("SELECT coalesce(max(rowid), 0) FROM entries")
        last_rowid = next(iter(rows_before))[0]
        await db.executemany(_INSERT_ENTRY, inserts)
        await db.execute(_HISTORY_OF_NEW, (now, actor, last_rowid))
        await db.execute(_CHANGES_OF_NEW, (now, actor, last_rowid))
    # After the inserts: a row may update an entry inserted earlier in the same call.
    if updates:
        await db.executemany(_UPDATE_ENTRY, updates)
        await db.executemany(INSERT_HISTORY, update_history)
        await db.executemany(INSERT_CHANGE, update_changes)
    return UpsertResult(len(inserts), updated, unchanged, entry_ids)


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

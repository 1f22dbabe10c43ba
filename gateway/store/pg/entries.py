"""List entries on PostgreSQL: :mod:`gateway.store.entries`' upsert and reads, ported.

SQLite stages an upsert's rows in a TEMP table and applies them with ``INSERT ...
SELECT`` statements (the rows inserted are found by ``rowid > max before``). Here the
rows of a round are matched with one ``SELECT ... FOR UPDATE`` on ``unnest`` of their
keys, compared in Python, then written with one statement per table (``unnest`` of
arrays, ``WITH ORDINALITY`` so that the history and change rows keep the input order).
What is written is the same, row for row and in the same order: first the new entries
(their history, then their changes), then the changed ones (``updated``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any, Final

import asyncpg

from gateway.model import EntryInput, ListEntry, StatusChange
from gateway.store.entries import UpsertCounts, UpsertResult, changed_rows, upsert_rounds
from gateway.store.pg import audit
from gateway.store.pg.rows import INSERT_CHANGES, INSERT_HISTORY, columns, entry_from_record
from gateway.store.rows import ENTRY_COLUMNS, new_ids, now_iso, status_change_from_row
from gateway.store.staging import CANONICAL_COLUMNS, STAGED_COLUMNS, staged_row

_WIDTH: Final = len(CANONICAL_COLUMNS)
_DATES: Final = frozenset({"listed_on", "expires_on"})
_TYPES: Final = [("date" if c in _DATES else "text") for c in STAGED_COLUMNS[1:]]
# The staged columns but the row number: entry_id, the canonical fields, source, source_id.
_COLUMNS: Final = ", ".join(STAGED_COLUMNS[1:])
_ARRAYS: Final = ", ".join(f"${n}::{t}[]" for n, t in enumerate(_TYPES, 1))

_MATCHED: Final = (
    f"SELECT e.source, e.source_id, e.entry_id, e.status, "
    f"{', '.join(f'e.{c}' for c in CANONICAL_COLUMNS)} FROM entries e "
    "JOIN unnest($1::text[], $2::text[]) AS k(source, source_id) "
    "ON e.source = k.source AND e.source_id = k.source_id FOR UPDATE OF e"
)
_INSERT_NEW: Final = (
    f"INSERT INTO entries ({_COLUMNS}, status, created_at, updated_at) "
    f"SELECT {_COLUMNS}, 'active', ${len(_TYPES) + 1}, ${len(_TYPES) + 1} "
    f"FROM unnest({_ARRAYS}) WITH ORDINALITY AS t({_COLUMNS}, n) ORDER BY n"
)
_UPDATE: Final = (
    f"UPDATE entries e SET {', '.join(f'{c} = u.{c}' for c in CANONICAL_COLUMNS)}, "
    f"updated_at = ${_WIDTH + 2} FROM unnest($1::text[], "
    + ", ".join(
        f"${n}::{'date' if c in _DATES else 'text'}[]" for n, c in enumerate(CANONICAL_COLUMNS, 2)
    )
    + f") AS u(entry_id, {', '.join(CANONICAL_COLUMNS)}) WHERE e.entry_id = u.entry_id"
)


def _as_staged(value: Any) -> Any:
    """A value read from ``entries`` as it is staged (dates as ISO text, as on SQLite)."""
    return value.isoformat() if isinstance(value, date) else value


def _dated(value: Any) -> Any:
    return value if value is None else date.fromisoformat(value)


async def _apply(
    conn: asyncpg.Connection, staged: list[tuple[Any, ...]], actor: str, ids: list[str]
) -> UpsertCounts:
    """Apply one round of staged rows (each key at most once), as
    :func:`gateway.store.entries.apply_staged` does; sets each row's entry id in ``ids``."""
    now = now_iso()
    keyed = [s for s in staged if s[-1] is not None]
    existing: dict[tuple[str, str], Any] = {}
    if keyed:
        found = await conn.fetch(_MATCHED, [s[-2] for s in keyed], [s[-1] for s in keyed])
        existing = {(r[0], r[1]): r for r in found}
    new: list[tuple[Any, ...]] = []
    updates: list[tuple[Any, ...]] = []
    changed: list[tuple[Any, ...]] = []  # (entry_id, status, *before, *after)
    matched = 0
    for s in staged:
        match = existing.get((s[-2], s[-1])) if s[-1] is not None else None
        if match is None:
            new.append(s)
            ids[s[0]] = s[1]
            continue
        matched += 1
        entry_id, status = match[2], match[3]
        ids[s[0]] = entry_id
        before = tuple(_as_staged(v) for v in match[4:])
        after = s[2 : 2 + _WIDTH]
        if before == after:
            continue
        updates.append((entry_id, *after))
        changed.append((entry_id, status, *before, *after))
    if new:
        rows = [(s[1], *s[2:9], _dated(s[9]), _dated(s[10]), *s[11:]) for s in new]
        await conn.execute(_INSERT_NEW, *columns(rows, len(_TYPES)), now)
        new_ids_ = [s[1] for s in new]
        count = len(new)
        await conn.execute(
            INSERT_HISTORY,
            new_ids_,
            ["active"] * count,
            [now] * count,
            [actor] * count,
            ["inserted"] * count,
            ["{}"] * count,
        )
        await conn.execute(INSERT_CHANGES, [s[2] for s in new], new_ids_, "entry", now, actor)
    if updates:
        rows = [(*u[:8], _dated(u[8]), _dated(u[9])) for u in updates]
        history, changes = changed_rows(changed, now, actor)
        await conn.execute(_UPDATE, *columns(rows, _WIDTH + 1), now)
        await conn.execute(INSERT_HISTORY, *columns(history, 6))
        await conn.execute(
            INSERT_CHANGES, [c[0] for c in changes], [c[2] for c in changes], "entry", now, actor
        )
    return UpsertCounts(len(new), len(updates), matched - len(updates))


async def upsert(conn: asyncpg.Connection, rows: Sequence[EntryInput], actor: str) -> UpsertResult:
    """As :func:`gateway.store.entries.upsert`: insert new entries, update changed ones
    (never their status), skip identical ones; a row repeating an earlier row's (source,
    source_id) in the same call updates (or leaves alone) what that row inserted. One
    audit line for the call when it inserted or updated anything."""
    staged = [
        staged_row(index, entry_id, row)
        for index, (entry_id, row) in enumerate(zip(new_ids(len(rows)), rows, strict=True))
    ]
    ids: list[str] = [""] * len(rows)
    inserted = updated = unchanged = 0
    for indexes in upsert_rounds(rows):
        counts = await _apply(conn, [staged[i] for i in indexes], actor, ids)
        inserted += counts.inserted
        updated += counts.updated
        unchanged += counts.unchanged
    if inserted or updated:
        after = {"inserted": inserted, "updated": updated, "unchanged": unchanged}
        await audit.record(conn, actor, "entries.upsert", f"{len(rows)} rows", None, after)
    return UpsertResult(inserted, updated, unchanged, ids)


async def get(conn: asyncpg.Connection, entry_id: str) -> ListEntry | None:
    row = await conn.fetchrow(f"SELECT {ENTRY_COLUMNS} FROM entries WHERE entry_id = $1", entry_id)
    return None if row is None else entry_from_record(row)


async def history(conn: asyncpg.Connection, entry_id: str) -> list[StatusChange]:
    rows = await conn.fetch(
        "SELECT entry_id, status, changed_at, actor, note, details FROM entry_history "
        "WHERE entry_id = $1 ORDER BY id",
        entry_id,
    )
    return [status_change_from_row(r) for r in rows]


async def of_subject(conn: asyncpg.Connection, uscc: str) -> list[ListEntry]:
    rows = await conn.fetch(
        f"SELECT {ENTRY_COLUMNS} FROM entries WHERE uscc = $1 ORDER BY listed_on, entry_id", uscc
    )
    return [entry_from_record(r) for r in rows]

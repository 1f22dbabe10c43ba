"""Staged imports on PostgreSQL: a sealed SQLite staging file applied chunk by chunk.

An import stages its valid rows in a :class:`~gateway.store.staging.StagingFile` (a
throwaway SQLite file: the importer is the same whatever the store) and the SQLite store
ATTACHes it. PostgreSQL cannot attach a file, so :func:`apply_file` reads it here, a
chunk of row numbers at a time (the next chunk is read in a thread while this one is
applied), and each chunk is one write transaction of :class:`~gateway.store.pg.PgStore`
(the log lock first) that copies its rows into a temporary table (binary ``COPY``,
dropped at commit, analyzed: autovacuum never analyzes one) and applies them with set
operations, as :func:`gateway.store.entries.apply_staged` does on SQLite:

1. the staged rows matching an entry by (source, source_id) are counted, and those that
   differ are read (``FOR UPDATE``) to write their history in Python
   (:func:`gateway.store.entries.changed_rows`, shared, so that the details are the same);
2. the rows matching no entry (or without a source_id) are inserted, and their history
   and changes written, in row order, by one ``INSERT ... SELECT`` statement;
3. the changed entries are updated from the temporary table, then their history and
   changes written in row order;
4. one audit line for the chunk when it inserted or updated anything.

The rows of a chunk stay in memory until its transaction ends, so a deadlock or
serialization failure that ``PgStore._write`` retries runs the chunk again whole.

So the entries, histories, change log and audit lines are the same as SQLite's, in the
same order (``tests/store/test_staging.py`` compares them). A row repeating a key in the
same chunk (a file whose :meth:`~gateway.store.staging.StagingFile.repeats` were not
dropped) does what it does on SQLite: a new key twice is a unique violation (the chunk
rolls back), an existing entry is updated by each changed row in turn (the last changed row wins).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any, Final, TypeVar

import asyncpg

from gateway.store.entries import UpsertCounts, changed_rows
from gateway.store.pg import audit
from gateway.store.pg.rows import INSERT_CHANGES, INSERT_HISTORY, command_count
from gateway.store.rows import now_iso
from gateway.store.staging import CANONICAL_COLUMNS, STAGED_COLUMNS

T = TypeVar("T")
#: :meth:`PgStore._write`: runs its argument in one write transaction holding the log lock.
Write = Callable[[Callable[[asyncpg.Connection], Awaitable[T]]], Awaitable[T]]

_DATES: Final = frozenset({"listed_on", "expires_on"})
_LISTED: Final = STAGED_COLUMNS.index("listed_on")
_EXPIRES: Final = STAGED_COLUMNS.index("expires_on")
assert _EXPIRES == _LISTED + 1, "read() rebuilds a row around the two dates"
_TABLE: Final = "gateway_staged"
_CREATE: Final = (
    f"CREATE TEMP TABLE {_TABLE} ("
    + ", ".join(
        "row bigint NOT NULL"
        if c == "row"
        else f"{c} date"
        if c in _DATES
        else f'{c} text COLLATE "C"'
        for c in STAGED_COLUMNS
    )
    + ") ON COMMIT DROP"
)
_MATCH: Final = "e.source = s.source AND e.source_id = s.source_id"
_SAME: Final = " AND ".join(f"e.{c} IS NOT DISTINCT FROM s.{c}" for c in CANONICAL_COLUMNS)
_MATCHED: Final = f"SELECT count(*) FROM {_TABLE} s JOIN entries e ON {_MATCH}"
_CHANGED: Final = (
    f"SELECT s.row, e.entry_id, e.status, {', '.join(f'e.{c}' for c in CANONICAL_COLUMNS)}, "
    f"{', '.join(f's.{c}' for c in CANONICAL_COLUMNS)} FROM {_TABLE} s "
    f"JOIN entries e ON {_MATCH} WHERE NOT ({_SAME}) ORDER BY s.row FOR UPDATE OF e"
)
# The new entries, then their history and their changes, in row order (each INSERT's
# ORDER BY draws its identities in that order); ``new`` holds the ids the first inserted.
# The status is the last INSERT's: as many changes as new entries.
_ENTRY_COLUMNS: Final = ", ".join(STAGED_COLUMNS[1:])
_INSERT_NEW: Final = (
    f"WITH new AS (INSERT INTO entries ({_ENTRY_COLUMNS}, status, created_at, updated_at) "
    f"SELECT {', '.join(f's.{c}' for c in STAGED_COLUMNS[1:])}, 'active', $1, $1 "
    f"FROM {_TABLE} s WHERE s.source_id IS NULL OR NOT EXISTS "
    f"(SELECT 1 FROM entries e WHERE {_MATCH}) ORDER BY s.row RETURNING entry_id), "
    "history AS (INSERT INTO entry_history (entry_id, status, changed_at, actor, note, details) "
    f"SELECT s.entry_id, 'active', $1, $2, 'inserted', '{{}}' FROM {_TABLE} s "
    "JOIN new USING (entry_id) ORDER BY s.row) "
    "INSERT INTO changes (uscc, kind, ref, at, actor) "
    f"SELECT s.uscc, 'entry', s.entry_id, $1, $2 FROM {_TABLE} s JOIN new USING (entry_id) "
    "ORDER BY s.row"
)
_UPDATE: Final = (
    f"UPDATE entries e SET {', '.join(f'{c} = s.{c}' for c in CANONICAL_COLUMNS)}, "
    f"updated_at = $1 FROM {_TABLE} s JOIN unnest($2::bigint[]) AS u(n) ON s.row = u.n "
    f"WHERE {_MATCH}"
)


def _as_staged(value: Any) -> Any:
    """A value as the staging file holds it (dates as ISO text), for the history's details."""
    return value.isoformat() if isinstance(value, date) else value


async def apply_chunk(
    conn: asyncpg.Connection,
    rows: Sequence[tuple[Any, ...]],
    first: int,
    last: int,
    actor: str,
) -> UpsertCounts:
    """Apply the staged ``rows`` (numbered ``first`` to ``last``, dates as ``date``) in the
    write transaction of ``conn``, as :func:`gateway.store.entries.apply_staged` does."""
    now = now_iso()
    # Statements of a few hundred milliseconds at most: compiling them would cost more.
    await conn.execute("SET LOCAL jit = off")
    await conn.execute(_CREATE)
    if rows:
        await conn.copy_records_to_table(_TABLE, records=rows, columns=STAGED_COLUMNS)
        # Autovacuum never analyzes a temporary table: without statistics the planner
        # misjudges the joins (and compiles them): about 1.5x slower, as measured.
        await conn.execute(f"ANALYZE {_TABLE}")
    matched = int(await conn.fetchval(_MATCHED))
    changed = [
        (r[0], r[1], r[2], *(_as_staged(v) for v in r[3:])) for r in await conn.fetch(_CHANGED)
    ]
    # The row each changed entry takes its values from: its last changed row (on SQLite,
    # one UPDATE per changed row, in row order).
    source_rows = list({r[1]: r[0] for r in changed}.values())
    history, changes = changed_rows([r[1:] for r in changed], now, actor)
    inserted = command_count(await conn.execute(_INSERT_NEW, now, actor))
    if changed:
        await conn.execute(_UPDATE, now, source_rows)
        await conn.execute(INSERT_HISTORY, *(list(c) for c in zip(*history, strict=True)))
        await conn.execute(
            INSERT_CHANGES, [c[0] for c in changes], [c[2] for c in changes], "entry", now, actor
        )
    counts = UpsertCounts(inserted, len(changed), matched - len(changed))
    if counts.inserted or counts.updated:
        after = {
            "inserted": counts.inserted,
            "updated": counts.updated,
            "unchanged": counts.unchanged,
        }
        await audit.record(conn, actor, "entries.upsert", f"rows {first}-{last}", None, after)
    return counts


class _StagingReader:
    """The sealed staging file, read-only, on a connection used by one thread at a time."""

    def __init__(self, path: Path) -> None:
        uri = f"{path.resolve().as_uri()}?mode=ro"
        self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)

    def span(self) -> tuple[int, int]:
        """The lowest and highest row numbers staged ((1, 0) when there is none)."""
        found = self._db.execute(
            "SELECT coalesce(min(row), 1), coalesce(max(row), 0) FROM staged"
        ).fetchone()
        return int(found[0]), int(found[1])

    def read(self, first: int, last: int) -> list[tuple[Any, ...]]:
        """The rows numbered ``first`` to ``last``, in order, their dates as ``date``."""
        rows = self._db.execute(
            f"SELECT {', '.join(STAGED_COLUMNS)} FROM staged WHERE row BETWEEN ? AND ? "
            "ORDER BY row",
            (first, last),
        ).fetchall()
        return [
            (
                *r[:_LISTED],
                date.fromisoformat(r[_LISTED]),
                None if r[_EXPIRES] is None else date.fromisoformat(r[_EXPIRES]),
                *r[_EXPIRES + 1 :],
            )
            for r in rows
        ]

    def close(self) -> None:
        self._db.close()


async def apply_file(
    write: Write[UpsertCounts], path: Path, actor: str, chunk: int
) -> AsyncIterator[tuple[int, UpsertCounts]]:
    """Apply the sealed staging file at ``path``, ``chunk`` row numbers per transaction
    (run by ``write``); yields the rows applied so far and what each chunk did, as
    :meth:`gateway.store.Store.apply_staging` does (a chunk of row numbers none of which
    was staged yields too)."""
    reader = await asyncio.to_thread(_StagingReader, path)
    reading: asyncio.Future[list[tuple[Any, ...]]] | None = None
    try:
        low, high = await asyncio.to_thread(reader.span)
        starts = range(low, high + 1, chunk)
        if starts:
            reading = asyncio.ensure_future(asyncio.to_thread(reader.read, low, low + chunk - 1))
        done = 0
        for first in starts:
            assert reading is not None
            rows = await reading
            last = first + chunk - 1
            reading = None
            if last < high:
                reading = asyncio.ensure_future(
                    asyncio.to_thread(reader.read, last + 1, last + chunk)
                )
            counts = await write(
                partial(apply_chunk, rows=rows, first=first, last=last, actor=actor)
            )
            done += counts.inserted + counts.updated + counts.unchanged
            yield done, counts
    finally:
        if reading is not None:  # a chunk read ahead and not needed: wait, and drop it
            await asyncio.wait([reading])
            if not reading.cancelled():
                reading.exception()
        await asyncio.to_thread(reader.close)

"""What the snapshot and the feed load, on PostgreSQL: :mod:`gateway.store.live` ported.

Dates are ``date`` columns: a proleptic ordinal (``date.toordinal``) is ``d - date
'0001-01-01' + 1`` (SQLite computes it with ``julianday``). A list of codes is a
``text[]`` parameter (SQLite's ``json_each``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, Final

import asyncpg

from gateway.model import EntryRecord, Grade, ListEntry
from gateway.store.live import LiveRows, by_subject
from gateway.store.pg.rows import entry_from_record, grade_from_record
from gateway.store.rows import ENTRY_COLUMNS, GRADE_COLUMNS
from gateway.store.schema import LIVE_CONDITION

_ORDINAL: Final = "({} - date '0001-01-01' + 1)"
_RECORD_COLUMNS: Final = (
    f"uscc, entry_id, list_type, status, {_ORDINAL.format('listed_on')}, "
    f"{_ORDINAL.format('expires_on')}, subject_name, authority, document_no"
)
# By uscc as SQLite's; entry_id breaks ties, so that every scan reads the same order.
_SCAN_ENTRIES: Final = (
    f"SELECT {_RECORD_COLUMNS} FROM entries WHERE {LIVE_CONDITION} ORDER BY uscc, entry_id"
)
_SCAN_GRADES: Final = f"SELECT uscc, {GRADE_COLUMNS} FROM grades ORDER BY uscc"


async def stream_rows(conn: asyncpg.Connection, chunk: int) -> AsyncIterator[LiveRows]:
    """As :func:`gateway.store.live.stream_rows`: live entries as :data:`EntryRecord`
    tuples by uscc, ``chunk`` at a time, each chunk with the grades of the codes up to its
    last (the last chunks bring the grades left).

    ``conn`` must be in a transaction (the caller's REPEATABLE READ, READ ONLY one): the
    two scans are server-side cursors, read ``chunk`` rows at a time.
    """
    entries = await conn.cursor(_SCAN_ENTRIES)
    grades = await conn.cursor(_SCAN_GRADES)
    pending: list[tuple[str, Grade]] = []
    done = False

    async def next_grade() -> tuple[str, Grade] | None:
        nonlocal pending, done
        if not pending and not done:
            found = await grades.fetch(chunk)
            done = len(found) < chunk
            pending = [(r[0], grade_from_record(r[1:])) for r in reversed(found)]
        return pending.pop() if pending else None

    graded = await next_grade()
    while found := await entries.fetch(chunk):
        rows: list[EntryRecord] = [tuple(r) for r in found]
        last, mine = rows[-1][0], []
        while graded is not None and graded[0] <= last:
            mine.append(graded)
            graded = await next_grade()
        yield rows, mine
    rest: list[tuple[str, Grade]] = []
    while graded is not None:
        rest.append(graded)
        graded = await next_grade()
        if len(rest) == chunk:
            yield [], rest
            rest = []
    if rest:
        yield [], rest


async def of_subjects(
    conn: asyncpg.Connection, usccs: Sequence[str]
) -> dict[str, tuple[tuple[ListEntry, ...], Grade | None]]:
    """Live entries and grade of each of ``usccs``; ``((), None)`` for one with nothing live."""
    wanted = sorted(set(usccs))
    entry_rows = await conn.fetch(
        f"SELECT {ENTRY_COLUMNS} FROM entries WHERE {LIVE_CONDITION} "
        "AND uscc = ANY($1::text[]) ORDER BY uscc, listed_on, entry_id",
        wanted,
    )
    grade_rows = await conn.fetch(
        f"SELECT uscc, {GRADE_COLUMNS} FROM grades WHERE uscc = ANY($1::text[])", wanted
    )
    return by_subject(
        usccs,
        map(entry_from_record, entry_rows),
        ((r[0], grade_from_record(r[1:])) for r in grade_rows),
    )


async def changes_since(conn: asyncpg.Connection, seq: int, limit: int) -> list[tuple[int, str]]:
    rows = await conn.fetch(
        "SELECT seq, uscc FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2", seq, limit
    )
    return [(int(r[0]), str(r[1])) for r in rows]


async def last_change_seq(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT coalesce(max(seq), 0) FROM changes"))


async def change_at(conn: asyncpg.Connection, seq: int) -> str:
    """As :func:`gateway.store.live.change_at`: ``"<at> <kind> <ref>"``, "" if none."""
    row: Any = await conn.fetchrow("SELECT at, kind, ref FROM changes WHERE seq = $1", seq)
    return " ".join(map(str, row)) if row is not None else ""

"""What the in-memory snapshot loads (SQL): live entries and grades by subject, changes.

A subject is *live* when it has an entry with status ``active`` or
``objection_pending`` (whatever its dates: the engine decides by date), or a
grade. Entries are ordered by ``listed_on, entry_id``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Generator, Iterable, Sequence
from itertools import groupby
from operator import itemgetter
from typing import Any, Final, TypeAlias

import aiosqlite

from gateway.model import EntryRecord, Grade, ListEntry
from gateway.store.rows import ENTRY_COLUMNS, GRADE_COLUMNS, entry_from_row, grade_from_row, to_json
from gateway.store.schema import LIVE_CONDITION

#: ``(uscc, entry records, grade)``
LiveRecords: TypeAlias = tuple[str, list[EntryRecord], Grade | None]
_ORDINAL: Final = "CAST(julianday({}) - 1721424.5 AS INTEGER)"  # julianday → date ordinal
_RECORD_COLUMNS: Final = (
    f"uscc, entry_id, list_type, status, {_ORDINAL.format('listed_on')}, "
    f"{_ORDINAL.format('expires_on')}, subject_name, authority, document_no"
)
_LISTED_ORDER: Final = itemgetter(4, 1)
_USCC: Final = itemgetter(0)
_LIVE_ENTRIES: Final = f"SELECT {ENTRY_COLUMNS} FROM entries WHERE {LIVE_CONDITION}"
_ORDER: Final = "ORDER BY uscc, listed_on, entry_id"


def _group(
    entry_rows: Iterable[Sequence[Any]], grade_rows: Iterable[Sequence[Any]]
) -> dict[str, tuple[list[ListEntry], Grade | None]]:
    grouped: dict[str, tuple[list[ListEntry], Grade | None]] = {}
    for row in entry_rows:
        entry = entry_from_row(row)
        found = grouped.get(entry.uscc)
        if found is None:
            grouped[entry.uscc] = ([entry], None)
        else:
            found[0].append(entry)
    for row in grade_rows:
        entries = grouped.get(row[0], ([], None))[0]
        grouped[row[0]] = (entries, grade_from_row(row[1:]))
    return grouped


def stream_records(
    conn: sqlite3.Connection, chunk: int
) -> Generator[list[LiveRecords], None, None]:
    """Every live subject, by uscc, ``chunk`` at a time, each entry as an
    :data:`EntryRecord` (raw values, dates as ordinals): what the packed snapshot keeps.

    One read transaction (the caller's ``conn``, opened for this): two ordered scans,
    live entries and grades, merged by uscc. Streaming one scan reads ten million rows
    in about 15 s on the development machine; reading them a page of subjects at a time
    (a query per page to find its subjects, one for its entries) took 53 s.
    """
    conn.execute("BEGIN")
    try:
        entries = conn.execute(
            f"SELECT {_RECORD_COLUMNS} FROM entries WHERE {LIVE_CONDITION} ORDER BY uscc"
        )
        grades = conn.execute(f"SELECT uscc, {GRADE_COLUMNS} FROM grades ORDER BY uscc")
        graded = next(grades, None)
        out: list[LiveRecords] = []
        for uscc, group in groupby(entries, _USCC):
            while graded is not None and graded[0] < uscc:  # graded, nothing listed
                out.append((graded[0], [], grade_from_row(graded[1:])))
                graded = next(grades, None)
                if len(out) == chunk:
                    yield out
                    out = []
            grade = None
            if graded is not None and graded[0] == uscc:
                grade = grade_from_row(graded[1:])
                graded = next(grades, None)
            mine: list[EntryRecord] = list(group)
            if len(mine) > 1:
                mine.sort(key=_LISTED_ORDER)  # by listed_on, then entry_id
            out.append((uscc, mine, grade))
            if len(out) == chunk:
                yield out
                out = []
        while graded is not None:
            out.append((graded[0], [], grade_from_row(graded[1:])))
            graded = next(grades, None)
            if len(out) == chunk:
                yield out
                out = []
        if out:
            yield out
    finally:
        conn.execute("COMMIT")


async def of_subjects(
    db: aiosqlite.Connection, usccs: Sequence[str]
) -> dict[str, tuple[tuple[ListEntry, ...], Grade | None]]:
    """Live entries and grade of each of ``usccs``; ``((), None)`` for one with nothing live."""
    wanted = to_json(sorted(set(usccs)))
    entry_rows = await db.execute_fetchall(
        f"{_LIVE_ENTRIES} AND uscc IN (SELECT value FROM json_each(?)) {_ORDER}", (wanted,)
    )
    grade_rows = await db.execute_fetchall(
        f"SELECT uscc, {GRADE_COLUMNS} FROM grades WHERE uscc IN (SELECT value FROM json_each(?))",
        (wanted,),
    )
    grouped = _group(entry_rows, grade_rows)
    result: dict[str, tuple[tuple[ListEntry, ...], Grade | None]] = {}
    for uscc in usccs:
        entries, grade = grouped.get(uscc, ([], None))
        result[uscc] = (tuple(entries), grade)
    return result


async def changes_since(db: aiosqlite.Connection, seq: int, limit: int) -> list[tuple[int, str]]:
    rows = await db.execute_fetchall(
        "SELECT seq, uscc FROM changes WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
    )
    return [(int(r[0]), str(r[1])) for r in rows]


async def last_change_seq(db: aiosqlite.Connection) -> int:
    rows = list(await db.execute_fetchall("SELECT max(seq) FROM changes"))
    return int(rows[0][0] or 0)


async def change_at(db: aiosqlite.Connection, seq: int) -> str:
    """When change ``seq`` was made and what it changed ("" if there is no such change): a
    snapshot saved at ``seq`` carries it, so that it is never used with another store's
    change log (an entry's id is random: two stores never share one)."""
    rows = list(
        await db.execute_fetchall("SELECT at, kind, ref FROM changes WHERE seq = ?", (seq,))
    )
    return " ".join(map(str, rows[0])) if rows else ""

"""What the in-memory snapshot loads (SQL): live entries and grades by subject, changes.

A subject is *live* when it has an entry with status ``active`` or
``objection_pending`` (whatever its dates: the engine decides by date), or a
grade. Entries are ordered by ``listed_on, entry_id``.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Generator, Iterable, Sequence
from typing import Final, TypeAlias

import aiosqlite

from gateway.model import EntryRecord, Grade, ListEntry
from gateway.store.rows import ENTRY_COLUMNS, GRADE_COLUMNS, entry_from_row, grade_from_row, to_json
from gateway.store.schema import LIVE_CONDITION

#: A chunk of the live scan: entry records ordered by uscc, and ``(uscc, grade)`` pairs.
LiveRows: TypeAlias = tuple[list[EntryRecord], list[tuple[str, Grade]]]
_ORDINAL: Final = "CAST(julianday({}) - 1721424.5 AS INTEGER)"  # julianday → date ordinal
_RECORD_COLUMNS: Final = (
    f"uscc, entry_id, list_type, status, {_ORDINAL.format('listed_on')}, "
    f"{_ORDINAL.format('expires_on')}, subject_name, authority, document_no"
)
_LIVE_ENTRIES: Final = f"SELECT {ENTRY_COLUMNS} FROM entries WHERE {LIVE_CONDITION}"
_ORDER: Final = "ORDER BY uscc, listed_on, entry_id"


Subjects = dict[str, tuple[tuple[ListEntry, ...], Grade | None]]


def by_subject(
    usccs: Sequence[str], entries: Iterable[ListEntry], grades: Iterable[tuple[str, Grade]]
) -> Subjects:
    """Each of ``usccs`` with its entries (in the order given) and grade; ``((), None)``
    for one with neither (both backends, after decoding their rows)."""
    found: dict[str, list[ListEntry]] = {}
    for entry in entries:
        found.setdefault(entry.uscc, []).append(entry)
    graded = dict(grades)
    return {uscc: (tuple(found.get(uscc, ())), graded.get(uscc)) for uscc in usccs}


def stream_rows(
    conn: sqlite3.Connection, chunk: int, low: str | None = None, high: str | None = None
) -> Generator[LiveRows, None, None]:
    """Every live entry as an :data:`EntryRecord` (raw values, dates as ordinals: what the
    packed snapshot keeps), ordered by uscc, ``chunk`` rows at a time, each chunk with the
    grades of the codes up to its last one (the last chunks bring the grades left).

    One read transaction (the caller's ``conn``, opened for this) and two ordered scans;
    grouping by subject is the consumer's (:meth:`gateway.compact_build.CompactBuilder.add_rows`),
    in the loop that packs them: grouping here into a list per subject cost more than the
    scan itself (ten million rows stream in about 15 s on the development machine).

    ``low`` and ``high``: only the codes from ``low`` (included) to ``high`` (excluded),
    either end open when None: a part of a build in several processes.
    """
    where, bounds = _code_range(low, high)
    conn.execute("BEGIN")
    try:
        entries = conn.execute(
            f"SELECT {_RECORD_COLUMNS} FROM entries WHERE {LIVE_CONDITION}{where} ORDER BY uscc",
            bounds,
        )
        grades = conn.execute(
            f"SELECT uscc, {GRADE_COLUMNS} FROM grades WHERE 1{where} ORDER BY uscc", bounds
        )
        graded = next(grades, None)
        while rows := entries.fetchmany(chunk):
            last, mine = rows[-1][0], []
            while graded is not None and graded[0] <= last:
                mine.append((graded[0], grade_from_row(graded[1:])))
                graded = next(grades, None)
            yield rows, mine
        rest: list[tuple[str, Grade]] = []
        while graded is not None:
            rest.append((graded[0], grade_from_row(graded[1:])))
            graded = next(grades, None)
            if len(rest) == chunk:
                yield [], rest
                rest = []
        if rest:
            yield [], rest
    finally:
        conn.execute("COMMIT")


def _code_range(low: str | None, high: str | None) -> tuple[str, list[str]]:
    """The conditions (to follow a WHERE) and parameters of codes from ``low`` to ``high``."""
    where, bounds = "", []
    if low is not None:
        where += " AND uscc >= ?"
        bounds.append(low)
    if high is not None:
        where += " AND uscc < ?"
        bounds.append(high)
    return where, bounds


def split_codes(
    conn: sqlite3.Connection, parts: int, min_entries: int = 0
) -> tuple[int, list[str]]:
    """The number of live entries, and the codes that cut them into ``parts`` runs of
    about as many entries (fewer codes where runs would be empty, none below
    ``min_entries``; one subject's entries are never cut: a part starts at a code). Read
    through the index on ``uscc``."""
    (count,) = conn.execute(f"SELECT count(*) FROM entries WHERE {LIVE_CONDITION}").fetchone()
    cuts: list[str] = []
    for part in range(1, parts if count >= min_entries else 1):
        found = conn.execute(
            f"SELECT uscc FROM entries WHERE {LIVE_CONDITION} ORDER BY uscc LIMIT 1 OFFSET ?",
            (count * part // parts,),
        ).fetchone()
        if found is not None and (not cuts or found[0] > cuts[-1]):
            cuts.append(found[0])
    return int(count), cuts


def scan_connection(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """A read-only connection for a scan of the whole store (of a process of its own)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA query_only = ON")
    return conn


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
    return by_subject(
        usccs, map(entry_from_row, entry_rows), ((r[0], grade_from_row(r[1:])) for r in grade_rows)
    )


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

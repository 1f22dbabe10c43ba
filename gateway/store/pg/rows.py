"""Rows of PostgreSQL to the domain Structs, and the statements every area shares.

asyncpg returns ``date`` columns as :class:`datetime.date` (SQLite gives ISO text, which
:mod:`gateway.store.rows` parses), so entries and grades have converters of their own
here; everything else (``now_iso``, ids, JSON) is :mod:`gateway.store.rows`'.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any, Final

from gateway.model import Grade, ListEntry
from gateway.store.rows import entry_from_values


def columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows as one list per column: the arrays ``unnest`` takes (``width`` lists, empty
    ones for no rows)."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]


#: ``INSERT INTO changes`` of many rows in one statement, in the order given (``$1``
#: usccs, ``$2`` refs; ``$3`` kind, ``$4`` at, ``$5`` actor): identities are drawn in the
#: order the rows come, as SQLite's rowids are by ``executemany``.
INSERT_CHANGES: Final = (
    "INSERT INTO changes (uscc, kind, ref, at, actor) "
    "SELECT u, $3, r, $4, $5 FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(u, r, n) "
    "ORDER BY n"
)
#: ``INSERT INTO entry_history`` of many rows, in order: one array per column.
INSERT_HISTORY: Final = (
    "INSERT INTO entry_history (entry_id, status, changed_at, actor, note, details) "
    "SELECT i, s, c, a, o, d FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
    "$5::text[], $6::text[]) WITH ORDINALITY AS t(i, s, c, a, o, d, n) ORDER BY n"
)


def iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


def entry_from_record(row: Sequence[Any]) -> ListEntry:
    """A :class:`ListEntry` from a row selected with :data:`gateway.store.rows.ENTRY_COLUMNS`
    (its dates are ``date`` already)."""
    return entry_from_values(row, row[3], row[4])


def grade_from_record(row: Sequence[Any]) -> Grade:
    """A :class:`Grade` from a row selected with :data:`gateway.store.rows.GRADE_COLUMNS`."""
    return Grade(row[0], row[1], row[2])


def command_count(status: str) -> int:
    """The row count of a command's status (``UPDATE 1`` → 1)."""
    return int(status.rsplit(" ", 1)[-1])

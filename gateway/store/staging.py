"""Staged list entries: validated rows in the store's column form, applied by set operations.

An import validates a whole file before it applies any of it, so its valid
rows wait somewhere in between. They wait in a :class:`StagingFile`, a
throwaway SQLite file (memory stays flat whatever the file's size) whose
``staged`` table has the columns of ``entries``; the store then ATTACHes it
and applies it chunk by chunk with a handful of ``INSERT ... SELECT``
statements (:func:`gateway.store.entries.apply_staged`), never passing a row
through Python unless it changes an existing entry. The Lists API's upserts
stage their rows in a TEMP table of the same shape and go through the same
statements.

>>> from datetime import date
>>> from gateway.model import ENTRY_FIELDS, EntryInput
>>> staged_row(7, "0190", EntryInput(uscc="91350100M000100Y43", list_type="court_defaulter",
...     listed_on=date(2026, 3, 1), source="court", source_id="A-1"))[:4]
(7, '0190', '91350100M000100Y43', '')
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from pathlib import Path
from typing import Any, Final

from gateway.model import ENTRY_FIELDS, EntryInput
from gateway.store.rows import new_ids

#: What a staged row holds, in order: the file's row number, the id the entry gets if it
#: is new, then the columns of ``entries`` that an import sets (the canonical fields).
STAGED_COLUMNS: Final = ("row", "entry_id", *ENTRY_FIELDS)
#: The columns an import may change on an existing entry (all but the key).
CANONICAL_COLUMNS: Final = STAGED_COLUMNS[2:-2]


def create_staged(schema: str) -> str:
    """The ``staged`` table in ``schema`` (``temp`` or an attached file's name)."""
    return (
        f"CREATE TABLE IF NOT EXISTS {schema}.staged (row INTEGER PRIMARY KEY, "
        "entry_id TEXT NOT NULL, uscc TEXT NOT NULL, subject_name TEXT NOT NULL, "
        "list_type TEXT NOT NULL, authority TEXT NOT NULL, reason TEXT NOT NULL, "
        "basis TEXT NOT NULL, document_no TEXT NOT NULL, listed_on TEXT NOT NULL, "
        "expires_on TEXT, source TEXT NOT NULL, source_id TEXT)"
    )


def insert_staged(schema: str) -> str:
    return f"INSERT INTO {schema}.staged VALUES ({', '.join('?' * len(STAGED_COLUMNS))})"


def staged_row(row: int, entry_id: str, entry: EntryInput) -> tuple[Any, ...]:
    """``entry`` as a staged row; ValueError for what the schema of ``entries`` would refuse."""
    listed_on, expires_on = entry.listed_on, entry.expires_on
    if not entry.uscc:
        raise ValueError(f"row {row}: uscc is empty")
    if not entry.list_type:
        raise ValueError(f"row {row}: list_type is empty")
    if expires_on is not None and expires_on < listed_on:
        raise ValueError(f"row {row}: expires_on {expires_on} is before listed_on {listed_on}")
    return (
        row,
        entry_id,
        entry.uscc,
        entry.subject_name,
        entry.list_type,
        entry.authority,
        entry.reason,
        entry.basis,
        entry.document_no,
        listed_on.isoformat(),
        None if expires_on is None else expires_on.isoformat(),
        entry.source,
        entry.source_id or None,  # no id: never matched, always a new entry
    )


class StagingFile:
    """Validated entries waiting in a temporary SQLite file until the whole file is read.

    No journal and no fsync: the file lives for one import and is deleted after it.
    """

    BATCH: Final = 5_000

    def __init__(self, directory: Path | None = None) -> None:
        handle, name = tempfile.mkstemp(prefix="gateway-import-", suffix=".db", dir=directory)
        os.close(handle)
        self.path = Path(name)
        self._db: sqlite3.Connection | None = sqlite3.connect(name, isolation_level=None)
        for pragma in ("journal_mode = OFF", "synchronous = OFF", "cache_size = -16384"):
            self._db.execute(f"PRAGMA {pragma}")
        self._db.execute(create_staged("main"))
        self._db.execute("BEGIN")
        self._pending: list[tuple[int, EntryInput]] = []
        self.count = 0

    def add(self, row: int, entry: EntryInput) -> None:
        self._pending.append((row, entry))
        if len(self._pending) >= self.BATCH:
            self._flush()

    def _flush(self) -> None:
        assert self._db is not None, "the staging file is already closed"
        ids = new_ids(len(self._pending))
        self._db.executemany(
            insert_staged("main"),
            [staged_row(row, i, entry) for i, (row, entry) in zip(ids, self._pending, strict=True)],
        )
        self.count += len(self._pending)
        self._pending.clear()

    def repeats(self) -> list[tuple[int, int]]:
        """``(row, first row)`` of every row repeating an earlier row's (source, source_id),
        dropped from the staging: what stays holds each key once."""
        self._flush()
        assert self._db is not None
        self._db.execute("CREATE INDEX staged_key ON staged (source, source_id, row)")
        found = self._db.execute(
            "SELECT s.row, f.first FROM staged s JOIN (SELECT source, source_id, min(row) AS "
            "first FROM staged WHERE source_id IS NOT NULL GROUP BY source, source_id "
            "HAVING count(*) > 1) f ON s.source = f.source AND s.source_id = f.source_id "
            "WHERE s.row > f.first ORDER BY s.row"
        ).fetchall()
        self._db.executemany("DELETE FROM staged WHERE row = ?", [(row,) for row, _ in found])
        self._db.execute("DROP INDEX staged_key")
        self.count -= len(found)
        return [(row, first) for row, first in found]

    def seal(self) -> Path:
        """Commit and close: the file is ready to be attached by the store."""
        self._flush()
        if self._db is not None:
            self._db.execute("COMMIT")
            self._db.close()
            self._db = None
        return self.path

    def close(self) -> None:
        """Close and delete the file."""
        if self._db is not None:
            self._db.close()
            self._db = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

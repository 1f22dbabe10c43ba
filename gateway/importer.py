"""Importing list files: any reader, an optional mapping, streaming, all or nothing.

One pass over the file and one over what it staged, memory flat whatever
its size:

1. **validate** every row (through the mapping when one is given), write
   each rejection, with its row, field and reason, to the report file, and
   stage the valid rows (encoded) in a temporary SQLite file;
2. unless a row was rejected (and ``allow_partial`` is off), **apply** the
   staged rows in chunks of ``chunk`` rows, one short transaction each, so
   that the recorder's group commits are never held up for long.

A failure in the middle of pass 2 (the disk, the process) leaves the chunks
before it applied; importing the same file again finishes the job, since an
import is idempotent on ``(source, source_id)``.
"""

from __future__ import annotations

import csv
import hashlib
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from adapters.sources import files
from adapters.sources.mapping import Mapping as SourceMapping
from gateway.lists import ImportSummary, Rejection, parse_entry, parse_grade
from gateway.model import EntryInput, Grade
from gateway.store import Store
from measures_catalog import Catalog

Kind = Literal["entries", "grades"]
#: Rejections kept in the summary (all of them go to the report file).
KEPT = 1_000
Progress = Callable[[str, int, float], None]


class ImportOptions(msgspec.Struct, frozen=True, kw_only=True):
    kind: Kind = "entries"
    fmt: files.Format | None = None
    encoding: str | None = None
    mapping: SourceMapping | None = None
    allow_partial: bool = False
    report: Path | None = None
    chunk: int = 5_000
    actor: str = "import"


def _rows(path: Path, options: ImportOptions) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """The file's rows as canonical records (through the mapping), or a mapping's problems."""
    rows = files.read(path, options.fmt, options.encoding)
    mapping = options.mapping
    if mapping is None:
        yield from rows
        return
    for number, record in rows:
        canonical, problems = mapping.apply(number, record)
        if problems:
            yield number, {"__problems__": problems}
        else:
            yield number, {k: v for k, v in canonical.items() if v != ""}


def _parsed(
    path: Path, catalog: Catalog, options: ImportOptions
) -> Iterator[tuple[int, EntryInput | tuple[str, Grade] | None, list[Rejection]]]:
    """Every row with what it parses to, or its rejections."""
    for number, record in _rows(path, options):
        if "__problems__" in record:
            problems = [Rejection(number, p.field, p.message) for p in record["__problems__"]]
            yield number, None, problems
        elif options.kind == "grades":
            yield (number, *parse_grade(number, record, catalog))
        else:
            yield (number, *parse_entry(number, record, catalog))


class _Staging:
    """The rows that passed validation, in a throwaway SQLite file: memory stays flat
    however big the file, and the second pass reads them back instead of parsing again.
    Keys of (source, source_id) are hashed to find rows that repeat one."""

    def __init__(self, kind: Kind) -> None:
        self._type: Any = tuple[str, Grade] if kind == "grades" else EntryInput
        self._encode = msgspec.msgpack.Encoder().encode
        self._db = sqlite3.connect("", isolation_level=None)  # a temporary on-disk database
        self._db.execute("PRAGMA cache_size = -16384")  # 16 MiB, then it spills to disk
        self._db.execute("CREATE TABLE staged (row INTEGER PRIMARY KEY, key BLOB, payload BLOB)")
        self._db.execute("BEGIN")
        self._pending: list[tuple[int, bytes | None, bytes]] = []

    def add(self, row: int, parsed: EntryInput | tuple[str, Grade]) -> None:
        key = None
        if isinstance(parsed, EntryInput) and parsed.source_id:
            key = hashlib.blake2b(
                f"{parsed.source}\0{parsed.source_id}".encode(), digest_size=12
            ).digest()
        self._pending.append((row, key, self._encode(parsed)))
        if len(self._pending) >= 5_000:
            self._flush()

    def _flush(self) -> None:
        self._db.executemany("INSERT INTO staged VALUES (?, ?, ?)", self._pending)
        self._pending.clear()

    def repeats(self) -> list[Rejection]:
        """Rows repeating an earlier row's (source, source_id), dropped from the staging."""
        self._flush()
        self._db.execute("CREATE INDEX staged_key ON staged (key, row) WHERE key IS NOT NULL")
        found = self._db.execute(
            "SELECT s.row, f.first FROM staged s JOIN (SELECT key, min(row) AS first "
            "FROM staged WHERE key IS NOT NULL GROUP BY key HAVING count(*) > 1) f "
            "ON s.key = f.key WHERE s.row > f.first ORDER BY s.row"
        ).fetchall()
        self._db.executemany("DELETE FROM staged WHERE row = ?", [(row,) for row, _ in found])
        return [
            Rejection(row, "source_id", f"same (source, source_id) as row {first}")
            for row, first in found
        ]

    def chunks(self, size: int) -> Iterator[list[Any]]:
        decode = msgspec.msgpack.Decoder(self._type).decode
        cursor = self._db.execute("SELECT payload FROM staged ORDER BY row")
        while batch := cursor.fetchmany(size):
            yield [decode(payload) for (payload,) in batch]

    def close(self) -> None:
        self._db.close()


async def import_file(
    store: Store,
    catalog: Catalog,
    path: Path,
    options: ImportOptions | None = None,
    progress: Progress | None = None,
    **legacy: Any,
) -> ImportSummary:
    """Validate the whole file, then (unless rejected) apply it; see the module docstring."""
    options = options or ImportOptions(**legacy)
    summary = ImportSummary()
    started = time.monotonic()
    report = _Report(options.report)
    staging = _Staging(options.kind)
    try:
        rejected: list[Rejection] = []
        for row, parsed, problems in _parsed(path, catalog, options):
            summary.rows += 1
            if parsed is not None and not problems:
                staging.add(row, parsed)
            for problem in problems:
                report.write(problem)
                if len(rejected) < KEPT:
                    rejected.append(problem)
            if progress and summary.rows % 10_000 == 0:
                progress("validated", summary.rows, time.monotonic() - started)
        for problem in staging.repeats():
            report.write(problem)
            rejected.append(problem)
        report.close()
        summary.rejected = sorted(rejected, key=lambda r: r.row)[:KEPT]
        summary.rejected_total = report.count
        if report.count and not options.allow_partial:
            return summary
        done = 0
        for chunk in staging.chunks(options.chunk):
            done += await _apply(store, options, chunk, summary)
            if progress:
                progress("applied", done, time.monotonic() - started)
        summary.applied = True
        return summary
    finally:
        report.close()
        staging.close()


async def _apply(
    store: Store, options: ImportOptions, rows: list[Any], summary: ImportSummary
) -> int:
    if not rows:
        return 0
    if options.kind == "grades":
        counts: Any = await store.put_grades(rows, options.actor)
    else:
        counts = await store.upsert_entries(rows, options.actor)
    summary.inserted += counts.inserted
    summary.updated += counts.updated
    summary.unchanged += counts.unchanged
    applied = len(rows)
    rows.clear()
    return applied


class _Report:
    """Rejected rows as CSV (row, field, reason), written as they are found."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.count = 0
        self._handle: Any = None
        self._writer: Any = None

    def write(self, rejection: Rejection) -> None:
        self.count += 1
        if self.path is None:
            return
        if self._writer is None:
            self._handle = self.path.open("w", encoding="utf-8-sig", newline="")
            self._writer = csv.writer(self._handle)
            self._writer.writerow(["row", "field", "reason"])
        self._writer.writerow([rejection.row, rejection.field, rejection.message])

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

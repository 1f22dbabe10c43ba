"""Importing list files: any reader, an optional mapping, streaming, all or nothing.

Two passes over the file, memory flat whatever its size (the keys that
refuse a ``(source, source_id)`` seen twice go to a temporary SQLite file):

1. **validate** every row (through the mapping when one is given) and write
   each rejection, with its row, field and reason, to the report file;
2. unless a row was rejected (and ``allow_partial`` is off), **apply** the
   rows in chunks of ``chunk`` rows, one short transaction each, so that the
   recorder's group commits are never held up for long.

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
    path: Path, catalog: Catalog, options: ImportOptions, *, dedupe: bool = True
) -> Iterator[tuple[int, EntryInput | tuple[str, Grade] | None, list[Rejection]]]:
    """Every row with what it parses to, or its rejections (duplicates too if ``dedupe``)."""
    seen = _SeenKeys() if dedupe else None
    for number, record in _rows(path, options):
        if "__problems__" in record:
            yield (
                number,
                None,
                [Rejection(number, p.field, p.message) for p in record["__problems__"]],
            )
            continue
        if options.kind == "grades":
            yield (number, *parse_grade(number, record, catalog))
            continue
        entry, problems = parse_entry(number, record, catalog)
        if seen is not None and entry is not None and entry.source_id:
            first = seen.first(entry.source, entry.source_id, number)
            if first != number:
                problems = [
                    Rejection(number, "source_id", f"same (source, source_id) as row {first}")
                ]
                entry = None
        yield number, entry, problems
    if seen is not None:
        seen.close()


class _SeenKeys:
    """Which row first had each (source, source_id): a throwaway SQLite file, so memory
    stays flat however many rows the file has."""

    def __init__(self) -> None:
        self._db = sqlite3.connect("", isolation_level=None)  # a temporary on-disk database
        self._db.execute("PRAGMA cache_size = -65536")  # 64 MiB, then it spills to disk
        self._db.execute("CREATE TABLE seen (key BLOB PRIMARY KEY, row INTEGER) WITHOUT ROWID")
        self._db.execute("BEGIN")

    def first(self, source: str, source_id: str, row: int) -> int:
        key = hashlib.blake2b(f"{source}\0{source_id}".encode(), digest_size=12).digest()
        found = self._db.execute(
            "INSERT INTO seen (key, row) VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
            "SET row = row RETURNING row",
            (key, row),
        ).fetchone()
        return int(found[0])

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
    skipped: set[int] = set()  # rows rejected in pass 1 (only as many as there are rejections)
    try:
        for row, _, problems in _parsed(path, catalog, options):
            summary.rows += 1
            if problems:
                skipped.add(row)
            for problem in problems:
                report.write(problem)
                if len(summary.rejected) < KEPT:
                    summary.rejected.append(problem)
            if progress and summary.rows % 10_000 == 0:
                progress("validated", summary.rows, time.monotonic() - started)
    finally:
        report.close()
    summary.rejected_total = report.count
    if report.count and not options.allow_partial:
        return summary
    pending: list[Any] = []
    done = 0
    for row, parsed, _ in _parsed(path, catalog, options, dedupe=False):
        if parsed is None or row in skipped:
            continue
        pending.append(parsed)
        if len(pending) >= options.chunk:
            done += await _apply(store, options, pending, summary)
            if progress:
                progress("applied", done, time.monotonic() - started)
    done += await _apply(store, options, pending, summary)
    summary.applied = True
    return summary


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

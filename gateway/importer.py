"""Importing list files: any reader, an optional mapping, streaming, all or nothing.

One pass over the file and one over what it staged, memory flat whatever
its size:

1. **validate** every row (through the mapping when one is given), write
   each rejection, with its row, field and reason, to the report file, and
   stage the valid rows in a temporary SQLite file (entries in the store's
   column form, :class:`~gateway.store.staging.StagingFile`);
2. unless a row was rejected (and ``allow_partial`` is off), **apply** the
   staged rows in chunks of ``chunk`` rows, one short transaction each, so
   that the recorder's group commits are never held up for long. Entries are
   applied by set operations inside the database (``apply_staging`` of
   :class:`~gateway.store.Store` or :class:`~gateway.store.pg.PgStore`).

The staging file goes to ``staging_dir``: by default beside a SQLite store's
file (the same disk, with room for the data), or the system's temporary
directory when the store is PostgreSQL's, which has no file.

A failure in the middle of pass 2 (the disk, the process) leaves the chunks
before it applied; importing the same file again finishes the job, since an
import is idempotent on ``(source, source_id)``.

A rejection's reason may quote the row (a date, a list type, a code that is
not a USCC); citizen ID numbers in it are masked, in the report as in the
summary (:func:`gateway.privacy.redact`).
"""

from __future__ import annotations

import csv
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
from gateway.privacy import redact
from gateway.store.backend import AnyStore
from gateway.store.staging import StagingFile
from gateway.store.store import Store
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
    chunk: int = 10_000
    actor: str = "import"
    #: Where the staging file goes (about the size of the valid rows, deleted after the
    #: import); None: beside a SQLite store's file, else the system's temporary directory.
    staging_dir: Path | None = None


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
            yield number, None, mask_rejections(problems)
        elif options.kind == "grades":
            grade, problems = parse_grade(number, record, catalog)
            yield number, grade, mask_rejections(problems)
        else:
            entry, problems = parse_entry(number, record, catalog)
            yield number, entry, mask_rejections(problems)


def mask_rejections(problems: list[Rejection]) -> list[Rejection]:
    """The rejections with every citizen ID number in their reasons masked."""
    if not problems:
        return problems
    return [
        Rejection(p.row, p.field, message) if (message := redact(p.message)) is not p.message else p
        for p in problems
    ]


class _GradeStaging:
    """Grades that passed validation, encoded in a throwaway SQLite file: memory stays
    flat however big the file, and the second pass reads them back instead of parsing
    again. (A grade has no (source, source_id) key: a later grade of a subject wins.)"""

    def __init__(self) -> None:
        self._type: Any = tuple[str, Grade]
        self._encode = msgspec.msgpack.Encoder().encode
        self._db = sqlite3.connect("", isolation_level=None)  # a temporary on-disk database
        self._db.execute("PRAGMA cache_size = -16384")  # 16 MiB, then it spills to disk
        self._db.execute("CREATE TABLE staged (row INTEGER PRIMARY KEY, payload BLOB)")
        self._db.execute("BEGIN")
        self._pending: list[tuple[int, bytes]] = []

    def add(self, row: int, parsed: tuple[str, Grade]) -> None:
        self._pending.append((row, self._encode(parsed)))
        if len(self._pending) >= 5_000:
            self._flush()

    def _flush(self) -> None:
        self._db.executemany("INSERT INTO staged VALUES (?, ?)", self._pending)
        self._pending.clear()

    def chunks(self, size: int) -> Iterator[list[Any]]:
        self._flush()
        decode = msgspec.msgpack.Decoder(self._type).decode
        cursor = self._db.execute("SELECT payload FROM staged ORDER BY row")
        while batch := cursor.fetchmany(size):
            yield [decode(payload) for (payload,) in batch]

    def close(self) -> None:
        self._db.close()


async def import_file(
    store: AnyStore,
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
    staging: StagingFile | _GradeStaging = (
        _GradeStaging() if options.kind == "grades" else StagingFile(_staging_dir(store, options))
    )
    try:
        rejected: list[Rejection] = []
        for row, parsed, problems in _parsed(path, catalog, options):
            summary.rows += 1
            if parsed is not None and not problems:
                staging.add(row, parsed)  # type: ignore[arg-type]
            for problem in problems:
                report.write(problem)
                if len(rejected) < KEPT:
                    rejected.append(problem)
            if progress and summary.rows % 10_000 == 0:
                progress("validated", summary.rows, time.monotonic() - started)
        if isinstance(staging, StagingFile):
            for row, first in staging.repeats():
                problem = Rejection(row, "source_id", f"same (source, source_id) as row {first}")
                report.write(problem)
                rejected.append(problem)
        report.close()
        if progress:  # the phase's last word, whatever the row count
            progress("validated", summary.rows, time.monotonic() - started)
        summary.rejected = sorted(rejected, key=lambda r: r.row)[:KEPT]
        summary.rejected_total = report.count
        if report.count and not options.allow_partial:
            return summary
        if isinstance(staging, StagingFile):
            await _apply_entries(store, staging, options, summary, progress, started)
        else:
            await _apply_grades(store, staging, options, summary, progress, started)
        summary.applied = True
        return summary
    finally:
        report.close()
        staging.close()


def _staging_dir(store: AnyStore, options: ImportOptions) -> Path | None:
    if options.staging_dir is not None:
        return options.staging_dir
    return store.path.parent if isinstance(store, Store) else None


async def _apply_entries(
    store: AnyStore,
    staging: StagingFile,
    options: ImportOptions,
    summary: ImportSummary,
    progress: Progress | None,
    started: float,
) -> None:
    async for done, counts in store.apply_staging(staging.seal(), options.actor, options.chunk):
        summary.inserted += counts.inserted
        summary.updated += counts.updated
        summary.unchanged += counts.unchanged
        if progress:
            progress("applied", done, time.monotonic() - started)


async def _apply_grades(
    store: AnyStore,
    staging: _GradeStaging,
    options: ImportOptions,
    summary: ImportSummary,
    progress: Progress | None,
    started: float,
) -> None:
    done = 0
    for chunk in staging.chunks(options.chunk):
        counts = await store.put_grades(chunk, options.actor)
        summary.inserted += counts.inserted
        summary.updated += counts.updated
        summary.unchanged += counts.unchanged
        done += len(chunk)
        if progress:
            progress("applied", done, time.monotonic() - started)


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

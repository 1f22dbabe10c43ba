"""``python -m gateway import``: progress on standard error, the summary on standard output."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from adapters.sources import mapping as mappings
from adapters.sources.files import SourceError
from gateway.importer import ImportOptions, import_file
from gateway.settings import Settings
from gateway.store import Store
from measures_catalog import load

SHOWN = 50


def _progress(phase: str, rows: int, seconds: float) -> None:
    rate = rows / seconds if seconds > 0 else 0.0
    end = "\r" if sys.stderr.isatty() else "\n"
    print(f"  {phase}: {rows:,} rows ({rate:,.0f} rows/s)", end=end, file=sys.stderr, flush=True)


def _mapping(name: str | None) -> mappings.Mapping | None:
    if not name:
        return None
    path = Path(name)
    return mappings.load(path if path.exists() else mappings.builtin(name))


async def run_import(settings: Settings, args: argparse.Namespace) -> int:
    catalog = load(settings.catalog or None)
    report = args.report or args.file.with_name(args.file.name + ".rejected.csv")
    try:
        options = ImportOptions(
            kind=args.kind,
            fmt=args.format,
            encoding=args.encoding,
            mapping=_mapping(args.mapping),
            allow_partial=args.allow_partial,
            report=report,
        )
    except (mappings.MappingError, LookupError, OSError) as exc:
        print(f"error: mapping: {exc}", file=sys.stderr)
        return 2
    store = await Store.open(settings.db)
    try:
        print(f"importing {args.kind} from {args.file} ...", file=sys.stderr)
        try:
            summary = await import_file(store, catalog, args.file, options, _progress)
        except (SourceError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    finally:
        await store.close()
    if sys.stderr.isatty():
        print(file=sys.stderr)
    for r in summary.rejected[:SHOWN]:
        print(f"  row {r.row}: {r.field}: {r.message}", file=sys.stderr)
    if summary.rejected_total > SHOWN:
        print(f"  ... and {summary.rejected_total - SHOWN} more", file=sys.stderr)
    if summary.rejected_total:
        print(f"  every rejected row: {report}", file=sys.stderr)
    state = (
        "applied"
        if summary.applied
        else "NOTHING APPLIED (use --allow-partial to apply the valid rows)"
    )
    print(
        f"{summary.rows} rows: {summary.inserted} inserted, {summary.updated} updated, "
        f"{summary.unchanged} unchanged, {summary.rejected_total} rejected; {state}"
    )
    return 0 if summary.applied else 1

"""``python -m gateway import``: progress on standard error, the summary on standard output."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from adapters.sources import mapping as mappings
from adapters.sources.files import SourceError
from gateway import scaleout
from gateway.importer import ImportOptions, import_file
from gateway.settings import Settings
from gateway.store.backend import open_store
from measures_catalog import load

SHOWN = 50


class _Progress:
    """Progress on standard error; remembers when each phase last reported."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def __call__(self, phase: str, rows: int, seconds: float) -> None:
        if self.seconds.get(phase) == seconds:
            return
        begun = self.seconds.get("validated", 0.0) if phase == "applied" else 0.0
        self.seconds[phase] = seconds
        rate = rows / (seconds - begun) if seconds > begun else 0.0
        end = "\r" if sys.stderr.isatty() else "\n"
        print(
            f"  {phase}: {rows:,} rows ({rate:,.0f} rows/s)", end=end, file=sys.stderr, flush=True
        )

    def phases(self) -> str:
        validated = self.seconds.get("validated", 0.0)
        applied = self.seconds.get("applied", validated) - validated
        return f"validated in {validated:.1f} s, applied in {applied:.1f} s"


def _mapping(name: str | None) -> mappings.Mapping | None:
    if not name:
        return None
    path = Path(name)
    return mappings.load(path if path.exists() else mappings.builtin(name))


async def run_import(settings: Settings, args: argparse.Namespace) -> int:
    catalog = load(settings.catalog or None)
    report = args.report or args.file.with_name(args.file.name + ".rejected.csv")
    if args.chunk < 1:
        print("error: --chunk must be at least 1", file=sys.stderr)
        return 2
    try:
        options = ImportOptions(
            kind=args.kind,
            fmt=args.format,
            encoding=args.encoding,
            mapping=_mapping(args.mapping),
            allow_partial=args.allow_partial,
            report=report,
            chunk=args.chunk,
            staging_dir=settings.local_path,
        )
    except (mappings.MappingError, LookupError, OSError) as exc:
        print(f"error: mapping: {exc}", file=sys.stderr)
        return 2
    store = await open_store(settings.db)
    settings.local_path.mkdir(parents=True, exist_ok=True)  # the staging file goes there
    progress = _Progress()
    try:
        print(f"importing {args.kind} from {args.file} ...", file=sys.stderr)
        try:
            summary = await import_file(store, catalog, args.file, options, progress)
        except (SourceError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if settings.redis_url and summary.applied:
            print(f"  {await scaleout.publish_once(settings, store)}", file=sys.stderr)
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
    print(f"  {progress.phases()}", file=sys.stderr)
    return 0 if summary.applied else 1

"""The command line: ``python -m gateway <command>``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from measures_catalog import Catalog, CatalogError, load


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    catalog = commands.add_parser("catalog", help="work with the measures catalog")
    catalog_commands = catalog.add_subparsers(dest="catalog_command", required=True)
    check = catalog_commands.add_parser(
        "check", help="validate a catalog directory (default: the packaged one)"
    )
    check.add_argument("directory", nargs="?", type=Path, help="catalog directory")

    commands.add_parser("demo", help="validate the catalog and decide a few demo subjects")

    args = parser.parse_args(argv)
    if args.command == "catalog":
        return catalog_check(args.directory)
    from gateway.demo import run_demo

    return run_demo()


def catalog_check(directory: Path | None) -> int:
    """Validate a catalog directory; print a summary, or every problem and exit 1."""
    try:
        catalog = load(directory)
    except CatalogError as exc:
        print(f"catalog {directory or '(packaged)'} refused:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(describe(catalog))
    unverified = catalog.unverified_bases()
    if unverified:
        print(f"  {len(unverified)} citations await verification (verified = false):")
        for code, basis in unverified:
            print(f"    {code}: {basis.text}")
    return 0


def describe(catalog: Catalog) -> str:
    kinds = [m.kind for m in catalog.measures.values()]
    return (
        f"catalog OK: {catalog.title} {catalog.version}, effective {catalog.effective_on}\n"
        f"  {len(catalog.list_types)} list types, {len(catalog.matter_types)} matter types, "
        f"{len(catalog.grades)} grades, {len(catalog.measures)} measures "
        f"({kinds.count('punishment')} punishment, {kinds.count('management')} management, "
        f"{kinds.count('incentive')} incentive)"
    )

"""The command line: ``python -m gateway <command>`` (``--help`` on each)."""

from __future__ import annotations

import argparse
import asyncio
import copy
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway import cli_keys
from gateway.privacy import RedactingFilter
from gateway.settings import Settings, SettingsError
from gateway.store.errors import StoreError
from measures_catalog import Catalog, CatalogError, load


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve the HTTP API (granian)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers", type=int, help="worker processes (default: GATEWAY_WORKERS, else 1)"
    )
    serve.add_argument(
        "--access-log",
        action="store_true",
        help="log every request (method, path, status, time; never a query string or a body; "
        "citizen ID numbers masked) on standard output",
    )

    cli_keys.add_commands(commands)
    commands.add_parser(
        "migrate", help="apply the store's pending schema migrations (GATEWAY_DB: file or URL)"
    )
    copy_store = commands.add_parser(
        "copy-store",
        help="copy the SQLite store (GATEWAY_DB) into an empty PostgreSQL database, verified",
    )
    copy_store.add_argument(
        "--to", required=True, metavar="URL", help="postgresql://user:password@host/db"
    )

    commands.add_parser(
        "recover-records",
        help="give the SQLite store (GATEWAY_DB) what killed workers left in its record log",
    )

    imp = commands.add_parser(
        "import", help="import list entries or grades from a file (CSV, JSONL, XLSX)"
    )
    imp.add_argument("file", type=Path)
    imp.add_argument(
        "--format", choices=["csv", "jsonl", "xlsx"], help="default: from the extension"
    )
    imp.add_argument("--kind", choices=["entries", "grades"], default="entries")
    imp.add_argument(
        "--mapping",
        help="a mapping file, or the name of a shipped one "
        "(court_defaulter, market_serious_violation, wage_arrears, ...)",
    )
    imp.add_argument(
        "--encoding", help="CSV encoding (default: UTF-8, with or without BOM, else GB18030)"
    )
    imp.add_argument(
        "--report",
        type=Path,
        help="where rejected rows go (default: FILE.rejected.csv when there are any)",
    )
    imp.add_argument(
        "--allow-partial",
        action="store_true",
        help="apply the valid rows even if some are rejected",
    )
    imp.add_argument(
        "--chunk",
        type=int,
        default=10_000,
        help="rows per write transaction (default 10,000: about 0.2 s of write lock each; "
        "larger is faster but makes running gateways' recorders wait longer)",
    )

    pull = commands.add_parser("pull", help="follow an upstream platform's feed of entries")
    pull.add_argument("url", help="the feed's URL (GET ?cursor=&limit=, JSON pages)")
    pull.add_argument("--feed", required=True, help="a name for this feed (its cursor's file)")
    pull.add_argument("--cursor-dir", default="var/cursors")
    pull.add_argument("--token-env", help="environment variable holding the bearer token")
    pull.add_argument("--page-size", type=int, default=500)
    pull.add_argument("--deadline", type=float, help="stop at a page boundary after N seconds")

    catalog = commands.add_parser("catalog", help="work with the measures catalog")
    catalog_commands = catalog.add_subparsers(dest="catalog_command", required=True)
    check = catalog_commands.add_parser(
        "check", help="validate a catalog directory (default: the packaged one)"
    )
    check.add_argument("directory", nargs="?", type=Path, help="catalog directory")

    demo = commands.add_parser("demo", help="create a demo database and key, then serve")
    demo.add_argument("--db", default="var/demo.db")
    demo.add_argument("--subjects", type=int, default=100_000)
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--no-serve", action="store_true", help="prepare and print, do not serve")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _redact_last_resort()
    try:
        if args.command == "catalog":
            return catalog_check(args.directory)
        settings = Settings.from_env()
        if args.command == "migrate":
            from gateway.cli_migrate import migrate_command

            return migrate_command(settings.db)
        if args.command == "copy-store":
            from gateway.cli_migrate import copy_command

            return copy_command(settings.db, args.to)
        if args.command == "recover-records":
            from gateway.cli_migrate import recover_records_command

            return recover_records_command(settings.db, settings.record_log_mb << 20 or 1 << 20)
        if args.command == "serve":
            workers = settings.workers if args.workers is None else args.workers
            return serve(settings, args.host, args.port, workers, args.access_log)
        if args.command in ("keys", "audit"):
            return asyncio.run(cli_keys.run(settings, args))
        if args.command == "pull":
            return asyncio.run(_pull(settings, args))
        if args.command == "import":
            from gateway.cli_import import run_import

            return asyncio.run(run_import(settings, args))
        from gateway.demo import run_demo

        return run_demo(args.db, args.subjects, args.port, serve=not args.no_serve)
    except (SettingsError, CatalogError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:  # cannot open it, or a schema newer than this code
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _redact_last_resort() -> None:
    """A command's warnings go to standard error through ``logging.lastResort`` (nothing
    configures logging): mask citizen ID numbers there too."""
    handler = logging.lastResort
    if handler is not None and not any(isinstance(f, RedactingFilter) for f in handler.filters):
        handler.addFilter(RedactingFilter())


def granian_logging(log_format: str = "json") -> dict[str, Any]:
    """granian's logging configuration (its server log and access log) with every handler
    behind a :class:`~gateway.privacy.RedactingFilter`. Each worker applies it before it
    builds its app (whose own logging ``create_app`` sets up)."""
    from granian.log import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"redact": {"()": "gateway.privacy.RedactingFilter"}}
    if log_format == "json":
        config["formatters"]["json"] = {"()": "gateway.logs.JsonFormatter"}
    for handler in config["handlers"].values():
        handler["filters"] = [*handler.get("filters", ()), "redact"]
        if log_format == "json":
            handler["formatter"] = "json"
    return config


def serve(settings: Settings, host: str, port: int, workers: int, access_log: bool = False) -> int:
    """Run granian; each worker builds its own app from the environment.

    The access log, when on, is granian's default line: method and path, never the query
    string (``GET /v1/check?uscc=...``) nor a body; a path's citizen ID number is masked."""
    from granian import Granian
    from granian.constants import Interfaces

    # The store opened (and migrated) once here: one line naming a store that cannot be
    # opened, instead of every worker failing its start with a traceback, again and again.
    asyncio.run(_open_and_close(settings.db))
    os.environ["GATEWAY_DB"] = settings.db
    os.environ["GATEWAY_WORKERS"] = str(workers)  # each enforces its share of rate limits
    # Every worker keeps its metrics in a file there; a scrape adds them up (gateway.metrics).
    # Not imported here: prometheus_client reads the variable when it is first imported.
    metrics_dir = settings.local_path.resolve() / "metrics" / str(port)
    metrics_dir.mkdir(parents=True, exist_ok=True)
    for stale in metrics_dir.glob("*.db"):
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    server = Granian(
        "gateway.app:create_app",
        factory=True,
        address=host,
        port=port,
        workers=workers,
        interface=Interfaces.ASGI,
        backlog=2048,
        log_access=access_log,
        log_dictconfig=granian_logging(settings.log_format),
        # A worker that dies (killed, out of memory) is started again, not the end of the
        # server: the others answer meanwhile.
        respawn_failed_workers=True,
        respawn_interval=1.0,
    )
    # SIGHUP reloads the catalog in every worker instead of respawning them: validated
    # here first, then announced through the store; a refused catalog changes nothing.
    server.signal_handler_reload = lambda *_: reload_on_signal(settings)  # type: ignore[method-assign]
    server.serve()
    return 0


async def _open_and_close(db: str) -> None:
    from gateway.store.backend import open_store

    store = await open_store(db)
    await store.close()


def reload_on_signal(settings: Settings) -> None:
    from gateway.jobs import CATALOG_KEY
    from gateway.store.control import bump_sync

    try:
        catalog = load(settings.catalog or None)
    except CatalogError as exc:
        print(f"SIGHUP: catalog refused, the one in force stays:\n{exc}", file=sys.stderr)
        return
    generation = bump_sync(
        settings.db, CATALOG_KEY, catalog.version, "SIGHUP", audit_action="catalog.reload"
    )
    print(
        f"SIGHUP: catalog {catalog.version} announced to every worker (generation {generation})",
        file=sys.stderr,
    )


async def _pull(settings: Settings, args: argparse.Namespace) -> int:
    from adapters.sources.upstream import UpstreamError
    from gateway.feeds import pull_feed
    from gateway.store.backend import open_store

    token = os.environ.get(args.token_env) if args.token_env else None
    store = await open_store(settings.db)
    try:
        summary = await pull_feed(
            store,
            load(settings.catalog or None),
            args.url,
            args.feed,
            cursor_dir=args.cursor_dir,
            token=token,
            page_size=args.page_size,
            deadline=args.deadline,
        )
    except UpstreamError as exc:
        print(f"error: {exc} (the next run resumes from the last applied page)", file=sys.stderr)
        return 1
    finally:
        await store.close()
    for r in summary.rejected[:50]:
        print(f"  item {r.row}: {r.field}: {r.message}", file=sys.stderr)
    print(
        f"{summary.pages} pages, {summary.items} items: {summary.inserted} inserted, "
        f"{summary.updated} updated, {summary.unchanged} unchanged, {summary.ended} ended, "
        f"{len(summary.rejected)} rejected; "
        f"{'caught up' if summary.caught_up else 'stopped at the deadline'}"
    )
    return 0


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

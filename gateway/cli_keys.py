"""``python -m gateway keys``: create, list, revoke, rotate, limit; and ``audit``.

Changes made here are audited as ``cli:<user>`` (the operating-system account that ran
the command) and reach every running worker within ``GATEWAY_KEYS_REFRESH``.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import datetime, timedelta

from gateway.settings import Settings

LIST_COLUMNS = (
    "key_id",
    "caller",
    "department",
    "scopes",
    "created_at",
    "revoked_at",
    "expires_at",
    "rate_per_second",
)


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser("keys", help="API keys of calling systems")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="create a key; it is printed once, last")
    create.add_argument("--caller", required=True, help="calling system, e.g. 省政务服务网审批系统")
    create.add_argument("--department", required=True, help="its department (响应部门)")
    create.add_argument(
        "--scopes", required=True, help="comma-separated: check, feedback, lists, reports, admin"
    )
    _limit_options(create)
    key_commands.add_parser("list", help="list keys (never the keys themselves)")
    revoke = key_commands.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    rotate = key_commands.add_parser(
        "rotate", help="a new key for the same caller; the old one works for --overlap-hours"
    )
    rotate.add_argument("key_id")
    rotate.add_argument("--overlap-hours", type=float, default=24.0)
    limit = key_commands.add_parser(
        "limit", help="set a key's expiry and rate limit (what is not given stays)"
    )
    limit.add_argument("key_id")
    _limit_options(limit)

    audit = commands.add_parser("audit", help="print the audit log (JSON lines, oldest first)")
    audit.add_argument("--action", help="e.g. key.create, key.revoke, key.rotate, catalog.reload")
    audit.add_argument("--target", help="a key id, or catalog")
    audit.add_argument("--limit", type=int, default=1000)


def _limit_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--expires-in-days", type=float, help="the key stops working after this")
    parser.add_argument(
        "--rate", type=float, help="requests a second (default: GATEWAY_RATE_LIMIT)"
    )
    parser.add_argument("--burst", type=int, help="requests above the rate in a burst")


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


async def run(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.store import KeyLimits, KeyNotFound
    from gateway.store.backend import open_store

    store = await open_store(settings.db)
    try:
        command = getattr(args, "keys_command", "audit")
        if command in ("create", "limit"):
            if args.expires_in_days is not None and args.expires_in_days <= 0:
                return _error("--expires-in-days must be more than 0")
            if (args.rate is not None and args.rate <= 0) or (
                args.burst is not None and args.burst < 1
            ):
                return _error("--rate must be more than 0 and --burst at least 1")
            ends = None
            if args.expires_in_days is not None:
                ends = datetime.now().astimezone() + timedelta(days=args.expires_in_days)
            limits = KeyLimits(ends, args.rate, args.burst)
        if command == "create":
            scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
            try:
                caller, key = await store.create_key(
                    args.caller, args.department, scopes, limits, _actor()
                )
            except ValueError as exc:
                return _error(str(exc))
            print(
                f"caller {caller.caller_id}: {caller.name} ({caller.department}); "
                f"scopes {','.join(sorted(caller.scopes))}; key id {caller.key_id}"
            )
            print("the key is shown once; store it now:")
            print(key)
        elif command == "list":
            print("\t".join(LIST_COLUMNS))
            for row in await store.list_keys():
                row = {**row, "scopes": ",".join(row.get("scopes") or [])}
                print("\t".join(str(row.get(k) or "") for k in LIST_COLUMNS))
        elif command == "revoke":
            if not await store.revoke_key(args.key_id, _actor()):
                print(f"error: no active key {args.key_id!r}", file=sys.stderr)
                return 1
            print(f"revoked {args.key_id}")
        elif command == "rotate":
            overlap = timedelta(hours=args.overlap_hours)
            try:
                caller, key, old = await store.rotate_key(args.key_id, overlap, _actor())
            except KeyNotFound as exc:
                return _error(str(exc), 1)
            print(f"key {args.key_id} works until {old['expires_at']}; new key id {caller.key_id}")
            print("the key is shown once; store it now:")
            print(key)
        elif command == "limit":
            current = {k["key_id"]: k for k in await store.list_keys()}.get(args.key_id)
            if current is not None:  # what is not given stays as it is
                limits = KeyLimits(
                    limits.expires_at
                    if limits.expires_at is not None
                    else _moment(current["expires_at"]),
                    limits.rate_per_second or current["rate_per_second"],
                    limits.burst or current["burst"],
                )
            try:
                row = await store.set_key_limits(args.key_id, limits, _actor())
            except KeyNotFound as exc:
                return _error(str(exc), 1)
            print(
                f"key {args.key_id}: expires {row['expires_at'] or 'never'}, "
                f"rate {row['rate_per_second'] or 'default'}/s, burst {row['burst'] or 'default'}"
            )
        else:
            for line in await store.audit(action=args.action, target=args.target, limit=args.limit):
                print(json.dumps(line, ensure_ascii=False))
        return 0
    finally:
        await store.close()


def _moment(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _error(message: str, code: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code

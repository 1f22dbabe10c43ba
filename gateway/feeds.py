"""Following an upstream platform's feed into the store (``python -m gateway pull``).

Each page of the feed is validated like an import (every item a canonical
entry) and applied in one transaction, idempotent on ``(source, source_id)``;
an item whose ``status`` says ``repaired`` or ``revoked`` is repaired or
revoked after it is upserted. Items that fail validation are counted and
logged with their reason, never applied; the feed goes on (an upstream's bad
row must not stop every other change from arriving).
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

import msgspec

from adapters.sources.upstream import FileCursorStore, PullSummary, UpstreamPuller
from gateway.lists import Rejection, parse_entries
from gateway.store import InvalidTransition
from gateway.store.backend import AnyStore
from measures_catalog import Catalog

log = logging.getLogger("gateway.feeds")
ENDED = ("repaired", "revoked")


class FeedSummary(msgspec.Struct):
    pages: int = 0
    items: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    ended: int = 0
    rejected: list[Rejection] = []
    cursor: str | None = None
    caught_up: bool = True


async def pull_feed(
    store: AnyStore,
    catalog: Catalog,
    url: str,
    feed: str,
    *,
    cursor_dir: str,
    token: str | None = None,
    page_size: int = 500,
    deadline: float | None = None,
) -> FeedSummary:
    summary = FeedSummary()
    actor = f"feed {feed}"

    async def apply(items: list[dict[str, Any]]) -> None:
        statuses = [str(item.get("status") or "active") for item in items]
        rows = [
            (summary.items + n, {k: v for k, v in item.items() if k != "status"})
            for n, item in enumerate(items, start=1)
        ]
        entries, rejected = parse_entries(rows, catalog)
        for problem in rejected:
            log.warning(
                "feed %s item %d: %s: %s", feed, problem.row, problem.field, problem.message
            )
        summary.rejected.extend(rejected)
        summary.items += len(items)
        if not entries:
            return
        result = await store.upsert_entries(entries, actor)
        summary.inserted += result.inserted
        summary.updated += result.updated
        summary.unchanged += result.unchanged
        accepted = [
            s
            for (row, _), s in zip(rows, statuses, strict=True)
            if all(r.row != row for r in rejected)
        ]
        for entry_id, status in zip(result.entry_ids, accepted, strict=True):
            if status in ENDED:
                summary.ended += await _end(store, entry_id, status, actor)

    puller = UpstreamPuller(
        url, feed, FileCursorStore(cursor_dir), token=token, page_size=page_size
    )
    pulled: PullSummary = await puller.pull(apply, deadline=deadline)
    summary.pages, summary.cursor = pulled.pages, pulled.cursor
    summary.caught_up = pulled.caught_up
    return summary


async def _end(store: AnyStore, entry_id: str, status: str, actor: str) -> int:
    """Repair or revoke an entry the upstream reports as ended; 0 if it already was."""
    try:
        if status == "repaired":
            await store.repair(entry_id, date.today(), "upstream feed", actor)
        else:
            await store.revoke(entry_id, "revoked upstream", actor)
    except InvalidTransition:
        return 0
    return 1

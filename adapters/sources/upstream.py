"""Pull list changes from an upstream credit platform's paged feed, resuming from a cursor.

The upstream contract we support
--------------------------------
``GET {base_url}?cursor=<opaque>&limit=<n>`` (``cursor`` omitted on the very first pull;
``Authorization: Bearer <token>`` when a token is configured) answers ``200`` with JSON::

    {"items": [{...}, ...], "next_cursor": "<opaque string>" | null}

Each item is an object with the canonical entry fields (``uscc, subject_name, list_type,
authority, reason, basis, document_no, listed_on, expires_on, source, source_id``) and
optionally ``"status": "active" | "repaired" | "revoked"``. Items are passed to the caller
as received; validating them is the caller's business (``gateway.lists``), and applying
them must be idempotent on ``(source, source_id)``.

- ``next_cursor`` a string: more may follow; it is where the next request starts.
- ``next_cursor`` null or absent: caught up for now. The saved cursor stays the one that
  fetched this last page, so the next run re-reads that page (a harmless idempotent
  replay) and then sees whatever was appended after it.
- A page with no items also means caught up (its non-null ``next_cursor`` is kept).
- A non-empty page whose ``next_cursor`` equals the cursor that fetched it is an upstream
  bug (it would loop for ever) and is refused.

Delivery is at least once: a page's ``next_cursor`` is saved only after ``apply`` has
returned, so a crash in between replays that page and never skips one.

Failures: connection errors, dropped connections, timeouts, ``429`` and ``5xx`` are
retried (the same request) up to ``max_retries`` times, sleeping
``uniform(0, min(backoff_max, backoff_base * 2**attempt))`` or, when the answer carries
``Retry-After: <seconds>``, that many seconds (capped at ``backoff_max`` so a run stays
bounded). Any other non-2xx status, a body that is not JSON, or a page without an
``items`` list raise :class:`UpstreamError` at once. On error the cursor stays at the
last applied page, so the next run resumes there.

Time: every request has ``timeout`` seconds; ``pull(apply, deadline=s)`` stops cleanly at
a page boundary once ``s`` seconds have passed, and gives up (``UpstreamError``) rather
than sleep past the deadline between retries.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from gateway.privacy import redact

log = logging.getLogger(__name__)

Item = dict[str, Any]
Apply = Callable[[list[Item]], Awaitable[object]]
Sleep = Callable[[float], Awaitable[object]]

_FEED_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_RETRYABLE_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


class UpstreamError(RuntimeError):
    """The feed could not be read; ``status`` is the HTTP status when there was one.

    The message may quote the upstream's answer: citizen ID numbers in it are masked."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(redact(message))
        self.status = status


class CursorStore(Protocol):
    def load(self, feed: str) -> str | None: ...

    def save(self, feed: str, cursor: str) -> None: ...


class FileCursorStore:
    """One file per feed (``<directory>/<feed>.cursor``, the cursor as UTF-8 text).

    ``save`` writes a temporary file in the same directory, fsyncs it, renames it over
    the old one (``os.replace`` is atomic) and fsyncs the directory: after a crash the
    file holds either the old cursor or the new one, never a torn mix.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def _path(self, feed: str) -> Path:
        if not _FEED_NAME.fullmatch(feed):
            raise ValueError(f"feed name {feed!r}: use letters, digits, '.', '_' and '-'")
        return self.directory / f"{feed}.cursor"

    def load(self, feed: str) -> str | None:
        try:
            return self._path(feed).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def save(self, feed: str, cursor: str) -> None:
        target = self._path(feed)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{feed}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(cursor.encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_directory(self.directory)


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms that cannot open a directory
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - file systems that refuse a directory fsync
        pass
    finally:
        os.close(fd)


@dataclass(frozen=True)
class PullSummary:
    pages: int  # pages fetched and applied in this run
    items: int  # items handed to apply (replays included)
    cursor: str | None  # the saved cursor: where the next run starts
    retries: int  # requests repeated after a transient failure
    caught_up: bool = True  # False when the deadline stopped the run first


class UpstreamPuller:
    def __init__(
        self,
        base_url: str,
        feed_name: str,
        cursor_store: CursorStore,
        *,
        token: str | None = None,
        page_size: int = 500,
        timeout: float = 10.0,
        max_retries: int = 5,
        backoff_base: float = 0.2,
        backoff_max: float = 10.0,
        client: httpx.AsyncClient | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        if page_size < 1 or max_retries < 0 or timeout <= 0:
            raise ValueError("page_size >= 1, max_retries >= 0 and timeout > 0 are required")
        self.base_url = base_url
        self.feed_name = feed_name
        self.cursor_store = cursor_store
        self.token = token
        self.page_size = page_size
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._client = client
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()

    async def pull(self, apply: Apply, *, deadline: float | None = None) -> PullSummary:
        """Fetch and apply pages from the saved cursor until caught up (or the deadline)."""
        if self._client is not None:
            return await self._pull(self._client, apply, deadline)
        async with httpx.AsyncClient() as client:
            return await self._pull(client, apply, deadline)

    async def _pull(
        self, client: httpx.AsyncClient, apply: Apply, deadline: float | None
    ) -> PullSummary:
        ends_at = None if deadline is None else self._clock() + deadline
        cursor = self.cursor_store.load(self.feed_name)
        pages = items_seen = retries = 0
        while True:
            if ends_at is not None and self._clock() >= ends_at:
                log.info("feed %s: deadline reached after %d pages", self.feed_name, pages)
                return PullSummary(pages, items_seen, cursor, retries, caught_up=False)
            items, next_cursor, retried = await self._fetch(client, cursor, ends_at)
            retries += retried
            if items:
                await apply(items)
            pages += 1
            items_seen += len(items)
            if next_cursor is not None and next_cursor != cursor:
                self.cursor_store.save(self.feed_name, next_cursor)
                cursor = next_cursor
            if next_cursor is None or not items:
                return PullSummary(pages, items_seen, cursor, retries)

    async def _fetch(
        self, client: httpx.AsyncClient, cursor: str | None, ends_at: float | None
    ) -> tuple[list[Item], str | None, int]:
        """One page, retrying transient failures; also returns how many retries it took."""
        params: dict[str, str | int] = {"limit": self.page_size}
        if cursor is not None:
            params["cursor"] = cursor
        headers = {"Accept": "application/json"}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                response = await client.get(
                    self.base_url, params=params, headers=headers, timeout=self.timeout
                )
            except _RETRYABLE_ERRORS as exc:
                problem = f"{type(exc).__name__}: {exc}"
                status = None
            else:
                if response.is_success:
                    return (*_parse(response, cursor), attempt)
                status = response.status_code
                problem = f"HTTP {status}: {_snippet(response)}"
                if status != 429 and status < 500:
                    raise UpstreamError(f"{self.feed_name}: {problem}", status)
                retry_after = _retry_after(response)
            if attempt >= self.max_retries:
                raise UpstreamError(
                    f"{self.feed_name}: gave up after {attempt} retries: {problem}", status
                )
            if retry_after is not None:
                delay = min(retry_after, self.backoff_max)
            else:
                delay = self._rng.uniform(0, min(self.backoff_max, self.backoff_base * 2**attempt))
            if ends_at is not None and self._clock() + delay >= ends_at:
                raise UpstreamError(f"{self.feed_name}: deadline reached while retrying: {problem}")
            log.warning(
                "feed %s: %s; retry %d in %.2fs", self.feed_name, problem, attempt + 1, delay
            )
            await self._sleep(delay)
            attempt += 1


def _parse(response: httpx.Response, cursor: str | None) -> tuple[list[Item], str | None]:
    try:
        body = response.json()
    except ValueError as exc:
        raise UpstreamError(
            f"page is not JSON ({exc}): {_snippet(response)}", response.status_code
        ) from None
    items = body.get("items") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise UpstreamError(f"page has no 'items' list: {_snippet(response)}", response.status_code)
    if not all(isinstance(item, dict) for item in items):
        raise UpstreamError("page 'items' must all be JSON objects", response.status_code)
    next_cursor = body.get("next_cursor")
    if next_cursor is not None and not isinstance(next_cursor, str):
        raise UpstreamError(f"'next_cursor' must be a string or null, not {next_cursor!r}")
    if items and next_cursor is not None and next_cursor == cursor:
        raise UpstreamError("'next_cursor' did not advance past a non-empty page")
    return items, next_cursor


def _retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds; the HTTP-date form is ignored (back-off applies)."""
    value = response.headers.get("Retry-After")
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds >= 0 else None


def _snippet(response: httpx.Response, limit: int = 200) -> str:
    """The start of the answer, citizen ID numbers masked before the cut (which could
    otherwise leave the first digits of one in clear)."""
    text = response.text.strip().replace("\n", " ")
    shown = redact(text[: limit + 40])[:limit]  # a number (≤ 20 characters) across the cut
    return shown + ("…" if len(text) > limit else "")

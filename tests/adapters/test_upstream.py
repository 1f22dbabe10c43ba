"""UpstreamPuller against a real HTTP server on 127.0.0.1: paging, retries, resume, replay."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import pytest

from adapters.sources.upstream import FileCursorStore, PullSummary, UpstreamError, UpstreamPuller

T = TypeVar("T")
TOKEN = "s3cret"
FEED = "prov-credit"
TOTAL = 1234
PAGE = 500


def enc(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset={offset}".encode()).decode()


def dec(cursor: str) -> int:
    text = base64.urlsafe_b64decode(cursor.encode()).decode()
    if not text.startswith("offset="):
        raise ValueError(cursor)
    return int(text.removeprefix("offset="))


def make_item(i: int) -> dict[str, Any]:
    return {
        "uscc": f"9111{i:014d}",
        "subject_name": f"测试企业{i}有限公司",
        "list_type": "court_defaulter",
        "authority": "省高级人民法院",
        "reason": "有履行能力而拒不履行生效法律文书确定的义务",
        "basis": "《最高人民法院关于公布失信被执行人名单信息的若干规定》第一条",
        "document_no": f"(2026)执{i}号",
        "listed_on": "2026-03-01",
        "expires_on": "2028-03-01",
        "source": "prov-court",
        "source_id": f"e-{i:05d}",
        "status": "repaired" if i % 97 == 0 else "active",
    }


@dataclass
class Seen:
    number: int
    offset: int | None
    limit: int
    authorization: str | None


class FeedServer(ThreadingHTTPServer):
    """The upstream: ``GET /feed?cursor=&limit=``, scriptable by request number (from 1)."""

    daemon_threads = True

    def __init__(self, token: str) -> None:
        super().__init__(("127.0.0.1", 0), FeedHandler)
        self.token = token
        self.items = [make_item(i) for i in range(TOTAL)]
        self.script: dict[int, str] = {}
        self.requests: list[Seen] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/feed"

    def fail(self, numbers: range | list[int], action: str) -> None:
        self.script.update(dict.fromkeys(numbers, action))

    def append(self, count: int) -> None:
        with self.lock:
            self.items.extend(make_item(i) for i in range(len(self.items), len(self.items) + count))

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up on a slow answer is expected here

    def offsets(self) -> list[int | None]:
        return [seen.offset for seen in self.requests]


class FeedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FeedServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        cursor = query.get("cursor", [None])[0]
        offset = None if cursor is None else dec(cursor)
        limit = int(query["limit"][0])
        with self.server.lock:
            number = len(self.server.requests) + 1
            auth = self.headers.get("Authorization")
            self.server.requests.append(Seen(number, offset, limit, auth))
            action = self.server.script.get(number)
            page = self.server.items[offset or 0 : (offset or 0) + limit]
            more = (offset or 0) + len(page) < len(self.server.items)
        if action == "drop":
            self.close_connection = True
            return
        if action == "slow":
            self.server.stopping.wait(1.0)
        if action in ("500", "503", "429"):
            headers = {"Retry-After": "0" if action == "503" else "7"} if action != "500" else {}
            self._send(int(action), b'{"error": "busy"}', headers)
            return
        if auth != f"Bearer {self.server.token}":
            self._send(401, b'{"error": "invalid token"}')
            return
        next_cursor = enc((offset or 0) + len(page)) if more else None
        body: Any = {"items": page, "next_cursor": next_cursor}
        if action == "garbage":
            self._send(200, b"<html>maintenance</html>")
            return
        if action == "no-items":
            body = {"next_cursor": next_cursor}
        elif action == "items-not-list":
            body = {"items": "none today", "next_cursor": next_cursor}
        elif action == "stuck":
            body["next_cursor"] = cursor
        self._send(200, json.dumps(body, ensure_ascii=False).encode())


@pytest.fixture
def feed() -> Iterator[FeedServer]:
    server = FeedServer(TOKEN)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class Applied:
    """The caller's store: an idempotent upsert keyed by (source, source_id)."""

    def __init__(self) -> None:
        self.store: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[list[str]] = []

    async def __call__(self, items: list[dict[str, Any]]) -> None:
        self.calls.append([item["source_id"] for item in items])
        for item in items:
            self.store[(item["source"], item["source_id"])] = item

    @property
    def received(self) -> list[str]:
        return [source_id for call in self.calls for source_id in call]


class Sleeps:
    """An injected sleep that records the delays and does not wait."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def ids(start: int, stop: int) -> list[str]:
    return [f"e-{i:05d}" for i in range(start, stop)]


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def puller(feed: FeedServer, directory: Path, **options: Any) -> UpstreamPuller:
    options.setdefault("token", TOKEN)
    options.setdefault("sleep", Sleeps())
    options.setdefault("page_size", PAGE)
    return UpstreamPuller(feed.url, FEED, FileCursorStore(directory), **options)


def test_a_full_pull_applies_every_item_once_in_order(feed: FeedServer, tmp_path: Path) -> None:
    applied = Applied()
    summary = run(puller(feed, tmp_path).pull(applied))
    assert summary == PullSummary(pages=3, items=TOTAL, cursor=enc(1000), retries=0)
    assert applied.received == ids(0, TOTAL)
    assert [len(call) for call in applied.calls] == [500, 500, 234]
    assert applied.store[("prov-court", "e-00097")]["status"] == "repaired"
    assert feed.offsets() == [None, 500, 1000]
    assert {(seen.limit, seen.authorization) for seen in feed.requests} == {(PAGE, "Bearer s3cret")}
    assert FileCursorStore(tmp_path).load(FEED) == enc(1000)


def test_failures_midway_are_retried_with_real_backoff_without_gaps(
    feed: FeedServer, tmp_path: Path
) -> None:
    feed.fail([2], "503")  # Retry-After: 0
    feed.fail([3], "drop")  # connection closed without an answer
    feed.fail([4, 5], "500")  # twice in a row
    delays: list[float] = []

    async def real_sleep(seconds: float) -> None:
        delays.append(seconds)
        await asyncio.sleep(seconds)

    applied = Applied()
    started = time.monotonic()
    summary = run(
        puller(feed, tmp_path, sleep=real_sleep, backoff_base=0.02, backoff_max=0.05).pull(applied)
    )
    assert time.monotonic() - started < 2
    assert summary == PullSummary(pages=3, items=TOTAL, cursor=enc(1000), retries=4)
    assert applied.received == ids(0, TOTAL)  # no duplicate, no gap
    assert feed.offsets() == [None, 500, 500, 500, 500, 500, 1000]
    assert delays[0] == 0  # Retry-After honoured
    for attempt, delay in enumerate(delays[1:], start=1):
        assert 0 <= delay <= min(0.05, 0.02 * 2**attempt)


def test_giving_up_keeps_the_cursor_and_a_fresh_puller_resumes_there(
    feed: FeedServer, tmp_path: Path
) -> None:
    feed.fail(range(3, 7), "500")  # the third page fails 1 + max_retries times
    applied, sleeps = Applied(), Sleeps()
    with pytest.raises(UpstreamError, match=r"gave up after 3 retries: HTTP 500") as caught:
        run(puller(feed, tmp_path, max_retries=3, sleep=sleeps).pull(applied))
    assert caught.value.status == 500
    assert len(sleeps.delays) == 3
    assert all(0 <= d <= min(10.0, 0.2 * 2**i) for i, d in enumerate(sleeps.delays))
    assert applied.received == ids(0, 1000)
    assert FileCursorStore(tmp_path).load(FEED) == enc(1000)

    summary = run(puller(feed, tmp_path).pull(applied))  # a new process, say
    assert summary == PullSummary(pages=1, items=234, cursor=enc(1000), retries=0)
    assert feed.offsets()[6:] == [1000]  # resumed, not restarted from the beginning
    assert sorted(applied.store) == [("prov-court", i) for i in ids(0, TOTAL)]
    assert len(applied.received) - TOTAL <= PAGE  # at most one page replayed


def test_a_crash_inside_apply_replays_that_page_and_skips_nothing(
    feed: FeedServer, tmp_path: Path
) -> None:
    applied = Applied()

    class Crash(Exception):
        pass

    async def crashing(items: list[dict[str, Any]]) -> None:
        await applied(items)  # committed...
        if len(applied.calls) == 2:
            raise Crash  # ...but the process dies before the cursor is saved

    with pytest.raises(Crash):
        run(puller(feed, tmp_path).pull(crashing))
    assert FileCursorStore(tmp_path).load(FEED) == enc(500)

    summary = run(puller(feed, tmp_path).pull(applied))
    assert summary == PullSummary(pages=2, items=734, cursor=enc(1000), retries=0)
    assert feed.offsets() == [None, 500, 500, 1000]
    assert applied.received == ids(0, 1000) + ids(500, TOTAL)  # page 500.. replayed once
    assert len(applied.store) == TOTAL
    assert set(applied.received) == set(ids(0, TOTAL))


@pytest.mark.parametrize("token", [None, "wrong"])
def test_401_fails_at_once_without_retries(
    feed: FeedServer, tmp_path: Path, token: str | None
) -> None:
    sleeps, applied = Sleeps(), Applied()
    with pytest.raises(UpstreamError, match=r"HTTP 401: .*invalid token") as caught:
        run(puller(feed, tmp_path, token=token, sleep=sleeps).pull(applied))
    assert caught.value.status == 401
    assert len(feed.requests) == 1
    assert sleeps.delays == []
    assert applied.calls == []
    assert FileCursorStore(tmp_path).load(FEED) is None


def test_items_appended_later_are_picked_up_from_the_saved_cursor(
    feed: FeedServer, tmp_path: Path
) -> None:
    applied = Applied()
    run(puller(feed, tmp_path).pull(applied))
    feed.append(100)
    summary = run(puller(feed, tmp_path).pull(applied))
    assert summary == PullSummary(pages=1, items=334, cursor=enc(1000), retries=0)
    assert feed.offsets()[3:] == [1000]
    assert applied.calls[-1] == ids(1000, TOTAL + 100)  # the last page again, then the new
    assert len(applied.store) == TOTAL + 100

    feed.append(400)  # now the tail spills onto a new page
    summary = run(puller(feed, tmp_path).pull(applied))
    assert summary == PullSummary(pages=2, items=734, cursor=enc(1500), retries=0)
    assert len(applied.store) == TOTAL + 500


def test_retry_after_is_honoured_and_capped(feed: FeedServer, tmp_path: Path) -> None:
    feed.fail([1], "429")  # Retry-After: 7
    feed.fail([2], "429")
    sleeps = Sleeps()
    summary = run(puller(feed, tmp_path, sleep=sleeps, backoff_max=5).pull(Applied()))
    assert summary.retries == 2
    assert sleeps.delays == [5, 5]

    sleeps = Sleeps()
    feed.fail([6], "429")
    run(puller(feed, tmp_path, sleep=sleeps).pull(Applied()))
    assert sleeps.delays == [7]


def test_a_slow_answer_times_out_and_is_retried(feed: FeedServer, tmp_path: Path) -> None:
    feed.fail([1], "slow")
    applied = Applied()
    summary = run(puller(feed, tmp_path, timeout=0.2).pull(applied))
    assert summary.retries == 1
    assert applied.received == ids(0, TOTAL)


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("garbage", r"not JSON .*<html>maintenance"),
        ("no-items", r"no 'items' list"),
        ("items-not-list", r"no 'items' list"),
        ("stuck", r"did not advance"),
    ],
)
def test_a_malformed_page_fails_without_moving_the_cursor(
    feed: FeedServer, tmp_path: Path, action: str, message: str
) -> None:
    feed.fail([2], action)
    applied, sleeps = Applied(), Sleeps()
    with pytest.raises(UpstreamError, match=message):
        run(puller(feed, tmp_path, sleep=sleeps).pull(applied))
    assert applied.received == ids(0, 500)
    assert sleeps.delays == []
    assert FileCursorStore(tmp_path).load(FEED) == enc(500)


def test_the_deadline_stops_at_a_page_boundary(feed: FeedServer, tmp_path: Path) -> None:
    now = [0.0]
    applied = Applied()

    async def slow_apply(items: list[dict[str, Any]]) -> None:
        await applied(items)
        now[0] += 1.0

    summary = run(puller(feed, tmp_path, clock=lambda: now[0]).pull(slow_apply, deadline=1.5))
    assert summary == PullSummary(2, 1000, enc(1000), 0, caught_up=False)
    assert applied.received == ids(0, 1000)

    summary = run(puller(feed, tmp_path, clock=lambda: now[0]).pull(slow_apply, deadline=1.5))
    assert summary == PullSummary(1, 234, enc(1000), 0, caught_up=True)


def test_the_deadline_is_not_slept_through_between_retries(
    feed: FeedServer, tmp_path: Path
) -> None:
    feed.fail([1], "429")  # Retry-After: 7
    sleeps = Sleeps()
    with pytest.raises(UpstreamError, match="deadline reached while retrying"):
        run(puller(feed, tmp_path, sleep=sleeps, clock=lambda: 0.0).pull(Applied(), deadline=5))
    assert sleeps.delays == []


def test_file_cursor_store_survives_a_restart(tmp_path: Path) -> None:
    directory = tmp_path / "cursors"
    FileCursorStore(directory).save(FEED, enc(500))
    FileCursorStore(directory).save("other-feed", "opaque/=+ 游标")
    assert FileCursorStore(directory).load(FEED) == enc(500)
    assert FileCursorStore(directory).load("other-feed") == "opaque/=+ 游标"
    assert FileCursorStore(directory).load("never-pulled") is None
    store = FileCursorStore(directory)
    store.save(FEED, enc(1000))
    assert FileCursorStore(directory).load(FEED) == enc(1000)
    assert sorted(p.name for p in directory.iterdir()) == ["other-feed.cursor", f"{FEED}.cursor"]


def test_file_cursor_store_keeps_the_old_cursor_when_a_save_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileCursorStore(tmp_path)
    store.save(FEED, enc(500))

    def crash(src: str, dst: str) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr("adapters.sources.upstream.os.replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        store.save(FEED, enc(1000))
    monkeypatch.undo()
    assert FileCursorStore(tmp_path).load(FEED) == enc(500)
    assert [p.name for p in tmp_path.iterdir()] == [f"{FEED}.cursor"]  # no temp file left


@pytest.mark.parametrize("name", ["", "../escape", "a/b", ".hidden"])
def test_file_cursor_store_refuses_unsafe_feed_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="feed name"):
        FileCursorStore(tmp_path).save(name, "x")

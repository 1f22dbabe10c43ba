"""``python -m gateway pull``: an upstream platform's feed, served by a real local HTTP server,
lands in the store page by page; bad items are reported and skipped; revocations end entries;
the next run goes on from the saved cursor."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

import pytest

from gateway.store import Store
from tests.fixtures import run_gateway

ITEMS: list[dict[str, Any]] = [
    {
        "uscc": "91110000600037341L",
        "list_type": "court_defaulter",
        "listed_on": "2026-03-01",
        "authority": "北京市第一中级人民法院",
        "source": "up",
        "source_id": "1",
    },
    {
        "uscc": "91120224064012553U",
        "list_type": "wage_arrears",
        "listed_on": "2026-04-01",
        "source": "up",
        "source_id": "2",
    },
    {
        "uscc": "91110000600037341X",
        "list_type": "court_defaulter",
        "listed_on": "2026-04-02",
        "source": "up",
        "source_id": "3",
    },
    {
        "uscc": "91310000631696382C",
        "list_type": "focus",
        "listed_on": "2026-05-01",
        "source": "up",
        "source_id": "4",
    },
    {
        "uscc": "91120224064012553U",
        "list_type": "wage_arrears",
        "listed_on": "2026-04-01",
        "source": "up",
        "source_id": "2",
        "status": "revoked",
    },
]


class Feed(BaseHTTPRequestHandler):
    items: ClassVar[list[dict[str, Any]]] = []

    def do_GET(self) -> None:
        query = parse_qs(urlparse(self.path).query)
        offset = int(base64.b64decode(query.get("cursor", ["MA=="])[0]))
        limit = int(query["limit"][0])
        page = self.items[offset : offset + limit]
        end = offset + len(page)
        nxt = base64.b64encode(str(end).encode()).decode() if end < len(self.items) else None
        body = json.dumps({"items": page, "next_cursor": nxt}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def feed_url() -> Iterator[str]:
    Feed.items = list(ITEMS)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Feed)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/feed"
    server.shutdown()
    server.server_close()
    thread.join()


def pull(db: Path, url: str, cursors: Path) -> subprocess.CompletedProcess[str]:
    return run_gateway(
        db,
        "pull",
        url,
        "--feed",
        "province",
        "--page-size",
        "2",
        "--cursor-dir",
        str(cursors),
        timeout=60,
    )


def statuses(db: Path, uscc: str) -> list[str]:
    async def go() -> list[str]:
        async with await Store.open(db) as store:
            return [e.status for e in await store.subject_entries(uscc)]

    return asyncio.run(go())


def test_a_feed_lands_page_by_page_and_resumes(tmp_path: Path, feed_url: str) -> None:
    db, cursors = tmp_path / "g.db", tmp_path / "cursors"
    first = pull(db, feed_url, cursors)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == (
        "3 pages, 5 items: 3 inserted, 0 updated, 1 unchanged, 1 ended, 1 rejected; caught up"
    )
    assert "item 3: uscc: " in first.stderr
    assert statuses(db, "91110000600037341L") == ["active"]
    assert statuses(db, "91120224064012553U") == ["revoked"]
    assert statuses(db, "91310000631696382C") == ["active"]
    Feed.items.append(
        {
            "uscc": "92340602MA2PBMEM24",
            "list_type": "business_abnormal",
            "listed_on": "2026-06-01",
            "source": "up",
            "source_id": "5",
        }
    )
    second = pull(db, feed_url, cursors)
    assert second.returncode == 0, second.stderr
    assert "1 inserted" in second.stdout
    assert statuses(db, "92340602MA2PBMEM24") == ["active"]

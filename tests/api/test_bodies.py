"""Request bodies read once they are whole: a body framed by its ``content-length`` is
taken without awaiting the empty last message granian sends after it (each message is a
hand-over from granian's threads to the event loop), through the raw ``/v1/check`` and
through Litestar's handlers; a body without a length is read to its last message."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any

import pytest
from litestar.testing import TestClient

from gateway.api.bodies import content_length, read_body, whole_body_receive
from gateway.app import create_app
from gateway.problems import Problem
from gateway.settings import Settings
from tests.fixtures import RESTRICTED, Seeded

Client = TestClient[Any]


class Messages:
    """An ASGI ``receive`` giving ``bodies`` as http.request messages, each saying more may
    follow but the last; awaiting it once they are all given fails the test (what granian
    would answer: its empty last message)."""

    def __init__(self, bodies: Iterable[bytes], last_says_more: bool = True) -> None:
        self.bodies = list(bodies)
        self.last_says_more = last_says_more
        self.awaited = 0

    async def __call__(self) -> Any:
        self.awaited += 1
        if not self.bodies:
            raise AssertionError("receive awaited after the whole body came")
        body = self.bodies.pop(0)
        more = bool(self.bodies) or self.last_says_more
        return {"type": "http.request", "body": body, "more_body": more}


def test_a_body_of_its_content_length_is_read_in_one_message() -> None:
    receive = Messages([b'{"uscc": "x"}'])
    assert asyncio.run(read_body(receive, 1000, 13)) == b'{"uscc": "x"}'
    assert receive.awaited == 1


def test_a_body_in_chunks_is_read_until_its_content_length() -> None:
    receive = Messages([b'{"us', b'cc": ', b'"x"}'])
    assert asyncio.run(read_body(receive, 1000, 13)) == b'{"uscc": "x"}'
    assert receive.awaited == 3


def test_a_body_without_a_length_is_read_to_its_last_message() -> None:
    receive = Messages([b'{"uscc": "x"}', b""], last_says_more=False)
    assert asyncio.run(read_body(receive, 1000)) == b'{"uscc": "x"}'
    assert receive.awaited == 2


def test_an_announced_length_past_the_limit_is_413_before_any_byte_is_read() -> None:
    receive = Messages([b"x" * 20])
    with pytest.raises(Problem) as raised:
        asyncio.run(read_body(receive, 10, 20))
    assert raised.value.status == 413
    assert receive.awaited == 0


def test_a_body_past_the_limit_without_a_length_is_413() -> None:
    receive = Messages([b"x" * 8, b"x" * 8], last_says_more=False)
    with pytest.raises(Problem) as raised:
        asyncio.run(read_body(receive, 10))
    assert raised.value.status == 413


def test_the_wrapped_receive_ends_the_body_at_its_length_and_passes_the_rest() -> None:
    async def read(receive: Any) -> list[dict[str, Any]]:
        return [await receive(), await receive()]

    chunks = Messages([b"12345", b"67890"])
    first, second = asyncio.run(read(whole_body_receive(chunks, 10)))
    assert first["more_body"] is True
    assert second == {"type": "http.request", "body": b"67890", "more_body": False}
    plain = Messages([b"1"])
    assert whole_body_receive(plain, None) is plain


@pytest.mark.parametrize(
    ("headers", "length"),
    [
        ([(b"host", b"x"), (b"content-length", b"42")], 42),
        ([], None),
        ([(b"content-length", b"4x")], None),
        ([(b"content-length", b"42"), (b"transfer-encoding", b"chunked")], None),
        ([(b"transfer-encoding", b"chunked"), (b"content-length", b"42")], None),
    ],
)
def test_content_length_of_a_scope(headers: list[tuple[bytes, bytes]], length: int | None) -> None:
    scope: Any = {"headers": headers}
    assert content_length(scope) == length


def _call(
    client: Client, seeded: Seeded, path: str, body: bytes, length: bool = True
) -> tuple[int, Any]:
    """POST to the running app as granian would, the body in one message saying more may
    follow (without ``length``: then an empty last one); the answer's status and JSON."""
    ((name, value),) = seeded.auth().items()
    headers = [(b"content-type", b"application/json"), (name.lower().encode(), value.encode())]
    if length:
        headers.append((b"content-length", str(len(body)).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    receive = Messages([body]) if length else Messages([body, b""], last_says_more=False)
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    client.blocking_portal.call(client.app, scope, receive, send)
    answer = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(answer)


def test_check_batch_and_feedback_answer_without_awaiting_past_the_body(seeded: Seeded) -> None:
    app = create_app(Settings(db=str(seeded.path), poll_interval=0.05, keys_refresh=0.2))
    with TestClient(app) as client:
        check_body = json.dumps({"uscc": RESTRICTED, "matter": "bidding"}).encode()
        status, check = _call(client, seeded, "/v1/check", check_body)
        assert status == 200
        assert check["verdict"] == "restricted"
        batch = json.dumps({"matter": "bidding", "uscc": [RESTRICTED]}).encode()
        status, answer = _call(client, seeded, "/v1/check/batch", batch)
        assert status == 200
        assert answer["results"][0]["verdict"] == "restricted"
        executed = [{"code": m["code"], "executed": True} for m in check["measures"]]
        feedback = json.dumps(
            {
                "measures": executed,
                "outcome": "不予受理",
                "handled_by": "officer-17",
                "handled_at": "2026-11-21T16:20:00+08:00",
            }
        ).encode()
        path = f"/v1/checks/{check['check_id']}/feedback"
        status, answer = _call(client, seeded, path, feedback)
        assert status == 201, answer
        # Without a length (chunked), the body is read to its last message.
        status, again = _call(client, seeded, "/v1/check", check_body, length=False)
        assert status == 200
        assert again["verdict"] == "restricted"

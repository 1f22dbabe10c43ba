"""A served gateway takes a POST's body whole however it comes: framed by its length (taken
in one message), in chunks sent apart, or in a length split over several packets."""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import urlsplit

import pytest

from tests.fixtures import RESTRICTED, Seeded
from tests.server.conftest import Server

pytestmark = pytest.mark.slow


def _post(url: str, auth: str, head: list[str], parts: list[bytes]) -> tuple[int, dict[str, str]]:
    """POST /v1/check over a raw socket: ``head`` headers, then ``parts`` sent 50 ms apart;
    the status and the JSON answer (read to the end: ``connection: close``)."""
    address = urlsplit(url)
    lines = ["POST /v1/check HTTP/1.1", f"host: {address.netloc}", f"authorization: {auth}"]
    lines += ["content-type: application/json", "connection: close", *head]
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        for part in parts:
            time.sleep(0.05)
            sock.sendall(part)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    _, _, body = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), json.loads(body)


def test_a_post_body_by_length_in_parts_or_in_chunks(
    server_factory: type[Server], seeded: Seeded
) -> None:
    server = server_factory(seeded.path, workers=1).start()
    auth = seeded.auth()["Authorization"]
    body = json.dumps({"uscc": RESTRICTED, "matter": "bidding"}).encode()
    length = [f"content-length: {len(body)}"]

    status, answer = _post(server.url, auth, length, [body])
    assert status == 200
    assert answer["verdict"] == "restricted"

    status, answer = _post(server.url, auth, length, [body[:10], body[10:]])
    assert status == 200
    assert answer["uscc"] == RESTRICTED

    chunks = [b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:10], body[10:])]
    status, answer = _post(
        server.url, auth, ["transfer-encoding: chunked"], [*chunks, b"0\r\n\r\n"]
    )
    assert status == 200
    assert answer["verdict"] == "restricted"

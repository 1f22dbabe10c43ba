"""Input limits of every endpoint that takes input, against the real app: body size, batch
size, field lengths, nesting, malformed JSON, wrong content types and bad encodings each
answer 400/413/415/422 ``application/problem+json`` naming the field and the rule, never a
500, and a rejected request records nothing. Header and URL sizes are granian's: checked
against a real server.
"""

from __future__ import annotations

import contextlib
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
import pytest
from litestar.testing import TestClient

from gateway.app import create_app
from gateway.settings import Settings
from tests.fixtures import CLEAR, RESTRICTED, Seeded, seed_database
from tests.server.conftest import Server

Client = TestClient[Any]

JSON = "application/json"
#: What a rejected request must leave as it was.
RECORDS = ("checks", "feedback", "entries", "entry_history", "grades", "grade_history", "changes")

ROW = {
    "uscc": CLEAR,
    "subject_name": "某某劳务有限公司",
    "list_type": "wage_arrears",
    "authority": "杭州市人力资源和社会保障局",
    "listed_on": "2026-06-01",
    "source": "hz-hrss",
    "source_id": "W-1",
}
FEEDBACK = {"measures": [{"code": "P-LIC-01", "executed": True}], "outcome": "不予受理"}


class Env(NamedTuple):
    client: Client
    seeded: Seeded
    check_id: str

    def counts(self) -> dict[str, int]:
        with contextlib.closing(
            sqlite3.connect(f"file:{self.seeded.path}?mode=ro", uri=True)
        ) as db:
            return {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in RECORDS}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """One app for the module: every case checks that it changed nothing."""
    seeded = seed_database(tmp_path_factory.mktemp("limits") / "gateway.db")
    app = create_app(Settings(db=str(seeded.path), poll_interval=0.05, keys_refresh=0.2))
    with TestClient(app) as client:
        check = client.get(
            "/v1/check", params={"uscc": RESTRICTED, "matter": "licensing"}, headers=seeded.auth()
        )
        assert check.status_code == 200, check.text
        assert seeded.stored_check(check.json()["check_id"]) is not None  # counted before
        yield Env(client, seeded, check.json()["check_id"])


def js(value: Any) -> bytes:
    return msgspec.json.encode(value)


def long(n: int) -> str:
    return "长" * n  # characters, not bytes, are counted


class Case(NamedTuple):
    method: str
    path: str
    body: bytes | None
    content_type: str | None
    status: int
    field: str
    rule: str
    who: str = "approval"


CHECK = {"uscc": RESTRICTED, "matter": "bidding"}
BATCH = {"matter": "bidding", "uscc": [RESTRICTED]}
DEEP = b"[" * 100_000
ENTRY = "/v1/entries/{entry}"

CASES: dict[str, Case] = {
    # POST /v1/check: the raw ASGI route reads and decodes its own body
    "check-not-utf8": Case(
        "POST", "/v1/check", b'{"uscc": "\xff\xfe", "matter": "bidding"}', JSON, 400, "body", "utf8"
    ),
    "check-not-json": Case("POST", "/v1/check", b'{"uscc": ', JSON, 400, "body", "json"),
    "check-empty": Case("POST", "/v1/check", b"", JSON, 422, "body", "required"),
    "check-nested-deep": Case("POST", "/v1/check", DEEP, JSON, 413, "body", "max_body_size"),
    "check-nested": Case("POST", "/v1/check", b"[" * 10_000, JSON, 422, "body", "type"),
    "check-nested-field": Case(
        "POST", "/v1/check", b'{"uscc": ' + b"[" * 10_000, JSON, 422, "uscc", "type"
    ),
    "check-too-large": Case("POST", "/v1/check", b" " * 20_000, JSON, 413, "body", "max_body_size"),
    "check-text-plain": Case(
        "POST", "/v1/check", js(CHECK), "text/plain", 415, "content-type", "media_type"
    ),
    "check-no-type": Case("POST", "/v1/check", js(CHECK), None, 415, "content-type", "media_type"),
    "check-unknown-field": Case(
        "POST", "/v1/check", js({**CHECK, "extra": 1}), JSON, 422, "extra", "unknown_field"
    ),
    "check-missing-field": Case(
        "POST", "/v1/check", js({"matter": "bidding"}), JSON, 422, "uscc", "required"
    ),
    "check-commitment-type": Case(
        "POST", "/v1/check", js({**CHECK, "commitment": 0}), JSON, 422, "commitment", "type"
    ),
    **{
        f"check-{field}-too-long": Case(
            "POST", "/v1/check", js({**CHECK, field: long(n + 1)}), JSON, 422, field, "max_length"
        )
        for field, n in {"uscc": 64, "matter": 64, "matter_code": 128, "case_ref": 256}.items()
    },
    # GET /v1/check: the query string
    **{
        f"check-get-{field}-too-long": Case(
            "GET",
            f"/v1/check?uscc={RESTRICTED}&matter=bidding&{field}={'x' * (n + 1)}",
            None,
            None,
            422,
            field,
            "max_length",
        )
        for field, n in {"matter_code": 128, "case_ref": 256}.items()
    },
    "check-get-missing": Case(
        "GET", "/v1/check?matter=bidding", None, None, 422, "uscc", "required"
    ),
    "check-get-not-utf8": Case(
        "GET",
        f"/v1/check?uscc={RESTRICTED}&matter=bidding&case_ref=%FF",
        None,
        None,
        400,
        "query",
        "utf8",
    ),
    "check-get-commitment": Case(
        "GET",
        f"/v1/check?uscc={RESTRICTED}&matter=bidding&commitment=maybe",
        None,
        None,
        422,
        "commitment",
        "type",
    ),
    # POST /v1/check/batch
    "batch-not-utf8": Case(
        "POST",
        "/v1/check/batch",
        b'{"matter": "bidding", "uscc": ["\xff"]}',
        JSON,
        400,
        "body",
        "utf8",
    ),
    "batch-not-json": Case("POST", "/v1/check/batch", b"{,}", JSON, 400, "body", "json"),
    "batch-empty": Case("POST", "/v1/check/batch", b"", JSON, 422, "body", "required"),
    "batch-nested": Case("POST", "/v1/check/batch", DEEP, JSON, 422, "body", "type"),
    "batch-nested-field": Case(
        "POST",
        "/v1/check/batch",
        b'{"matter": "bidding", "uscc": ' + DEEP,
        JSON,
        422,
        "uscc[0]",
        "type",
    ),
    "batch-too-large": Case(
        "POST",
        "/v1/check/batch",
        js({**BATCH, "case_ref": "x" * 300_000}),
        JSON,
        413,
        "body",
        "max_body_size",
    ),
    "batch-too-many": Case(
        "POST",
        "/v1/check/batch",
        js({**BATCH, "uscc": [CLEAR] * 1001}),
        JSON,
        413,
        "uscc",
        "max_items",
    ),
    "batch-none": Case(
        "POST", "/v1/check/batch", js({**BATCH, "uscc": []}), JSON, 422, "uscc", "min_length"
    ),
    "batch-text-plain": Case(
        "POST", "/v1/check/batch", js(BATCH), "text/plain", 415, "content-type", "media_type"
    ),
    "batch-no-type": Case(
        "POST", "/v1/check/batch", js(BATCH), None, 415, "content-type", "media_type"
    ),
    "batch-code-too-long": Case(
        "POST",
        "/v1/check/batch",
        js({**BATCH, "uscc": [long(65)]}),
        JSON,
        422,
        "uscc[0]",
        "max_length",
    ),
    "batch-case_ref-too-long": Case(
        "POST",
        "/v1/check/batch",
        js({**BATCH, "case_ref": long(257)}),
        JSON,
        422,
        "case_ref",
        "max_length",
    ),
    "batch-commitment-type": Case(
        "POST", "/v1/check/batch", js({**BATCH, "commitment": 0}), JSON, 422, "commitment", "type"
    ),
    "batch-missing-field": Case(
        "POST", "/v1/check/batch", js({"uscc": [CLEAR]}), JSON, 422, "matter", "required"
    ),
    "batch-unknown-field": Case(
        "POST", "/v1/check/batch", js({**BATCH, "extra": 1}), JSON, 422, "extra", "unknown_field"
    ),
    # POST /v1/checks/{check_id}/feedback
    "feedback-not-utf8": Case(
        "POST", "/v1/checks/{check}/feedback", b'{"outcome": "\xc3"}', JSON, 400, "body", "utf8"
    ),
    "feedback-nested": Case(
        "POST",
        "/v1/checks/{check}/feedback",
        b'{"measures": ' + b"[" * 50_000,
        JSON,
        422,
        "measures[0]",
        "type",
    ),
    "feedback-too-large": Case(
        "POST",
        "/v1/checks/{check}/feedback",
        js({**FEEDBACK, "outcome": "x" * 70_000}),
        JSON,
        413,
        "body",
        "max_body_size",
    ),
    "feedback-text-plain": Case(
        "POST",
        "/v1/checks/{check}/feedback",
        js(FEEDBACK),
        "text/plain",
        415,
        "content-type",
        "media_type",
    ),
    "feedback-too-many-measures": Case(
        "POST",
        "/v1/checks/{check}/feedback",
        js({"measures": [{"code": "P", "executed": True}] * 201}),
        JSON,
        422,
        "measures",
        "max_length",
    ),
    "feedback-code-too-long": Case(
        "POST",
        "/v1/checks/{check}/feedback",
        js({"measures": [{"code": long(65), "executed": True}]}),
        JSON,
        422,
        "measures[0].code",
        "max_length",
    ),
    "feedback-reason-too-long": Case(
        "POST",
        "/v1/checks/{check}/feedback",
        js({"measures": [{"code": "P-LIC-01", "executed": False, "reason": long(2001)}]}),
        JSON,
        422,
        "measures[0].reason",
        "max_length",
    ),
    "feedback-outcome-too-long": Case(
        "POST",
        "/v1/checks/{check}/feedback",
        js({**FEEDBACK, "outcome": long(2001)}),
        JSON,
        422,
        "outcome",
        "max_length",
    ),
    "feedback-handled_by-too-long": Case(
        "POST",
        "/v1/checks/{check}/feedback",
        js({**FEEDBACK, "handled_by": long(129)}),
        JSON,
        422,
        "handled_by",
        "max_length",
    ),
    "feedback-handled_at-format": Case(
        "POST",
        "/v1/checks/{check}/feedback",
        js({**FEEDBACK, "handled_at": "昨天"}),
        JSON,
        422,
        "handled_at",
        "format",
    ),
    # POST /v1/lists/entries (read raw: a JSON array or NDJSON)
    "entries-not-utf8": Case(
        "POST",
        "/v1/lists/entries",
        b'[{"subject_name": "\xff"}]',
        JSON,
        400,
        "body",
        "utf8",
        "lists",
    ),
    "entries-ndjson-not-utf8": Case(
        "POST",
        "/v1/lists/entries",
        js(ROW) + b'\n{"subject_name": "\xff"}\n',
        "application/x-ndjson",
        400,
        "rows[2]",
        "utf8",
        "lists",
    ),
    "entries-empty": Case("POST", "/v1/lists/entries", b"", JSON, 422, "body", "required", "lists"),
    "entries-not-json": Case(
        "POST", "/v1/lists/entries", b"[{]", JSON, 400, "body", "json", "lists"
    ),
    "entries-nested": Case(
        "POST", "/v1/lists/entries", b'[{"reason": ' + DEEP, JSON, 400, "body", "max_depth", "lists"
    ),
    "entries-ndjson-nested": Case(
        "POST",
        "/v1/lists/entries",
        js(ROW) + b'\n{"reason": ' + DEEP,
        "application/x-ndjson",
        400,
        "rows[2]",
        "max_depth",
        "lists",
    ),
    "entries-not-objects": Case(
        "POST", "/v1/lists/entries", b"[{}, 1]", JSON, 422, "rows[2]", "type", "lists"
    ),
    "entries-text-csv": Case(
        "POST",
        "/v1/lists/entries",
        b"uscc\n",
        "text/csv",
        415,
        "content-type",
        "media_type",
        "lists",
    ),
    # the entry's lifecycle and the grade
    "objection-not-utf8": Case(
        "POST",
        ENTRY + "/objection",
        b'{"opened_on": "2026-11-01", "note": "\xff"}',
        JSON,
        400,
        "body",
        "utf8",
        "lists",
    ),
    "objection-nested": Case(
        "POST", ENTRY + "/objection", b"[" * 10_000, JSON, 422, "body", "type", "lists"
    ),
    "objection-text-plain": Case(
        "POST",
        ENTRY + "/objection",
        js({"opened_on": "2026-11-01"}),
        "text/plain",
        415,
        "content-type",
        "media_type",
        "lists",
    ),
    "objection-note-too-long": Case(
        "POST",
        ENTRY + "/objection",
        js({"opened_on": "2026-11-01", "note": long(2001)}),
        JSON,
        422,
        "note",
        "max_length",
        "lists",
    ),
    "objection-date-format": Case(
        "POST",
        ENTRY + "/objection",
        js({"opened_on": "2026-13-01"}),
        JSON,
        422,
        "opened_on",
        "format",
        "lists",
    ),
    "resolve-upheld-type": Case(
        "POST",
        ENTRY + "/objection/resolve",
        js({"upheld": "yes"}),
        JSON,
        422,
        "upheld",
        "type",
        "lists",
    ),
    "resolve-note-too-long": Case(
        "POST",
        ENTRY + "/objection/resolve",
        js({"upheld": True, "note": long(2001)}),
        JSON,
        422,
        "note",
        "max_length",
        "lists",
    ),
    "repair-decision_no-too-long": Case(
        "POST",
        ENTRY + "/repair",
        js({"repaired_on": "2026-11-01", "decision_no": long(201)}),
        JSON,
        422,
        "decision_no",
        "max_length",
        "lists",
    ),
    "repair-decision_no-empty": Case(
        "POST",
        ENTRY + "/repair",
        js({"repaired_on": "2026-11-01", "decision_no": ""}),
        JSON,
        422,
        "decision_no",
        "min_length",
        "lists",
    ),
    "revoke-note-too-long": Case(
        "POST",
        ENTRY + "/revoke",
        js({"note": long(2001)}),
        JSON,
        422,
        "note",
        "max_length",
        "lists",
    ),
    "revoke-too-large": Case(
        "POST",
        ENTRY + "/revoke",
        js({"note": "x" * 20_000}),
        JSON,
        413,
        "body",
        "max_body_size",
        "lists",
    ),
    "revoke-missing-body": Case(
        "POST", ENTRY + "/revoke", b"", JSON, 422, "body", "required", "lists"
    ),
    "grade-source-too-long": Case(
        "PUT",
        f"/v1/subjects/{CLEAR}/grade",
        js({"value": "good", "source": long(201)}),
        JSON,
        422,
        "source",
        "max_length",
        "lists",
    ),
    "grade-value-enum": Case(
        "PUT",
        f"/v1/subjects/{CLEAR}/grade",
        js({"value": "A+"}),
        JSON,
        422,
        "value",
        "enum",
        "lists",
    ),
    "grade-not-utf8": Case(
        "PUT",
        f"/v1/subjects/{CLEAR}/grade",
        b'{"value": "good", "source": "\xff"}',
        JSON,
        400,
        "body",
        "utf8",
        "lists",
    ),
    "subject-checks-type": Case(
        "GET", f"/v1/subjects/{CLEAR}?checks=many", None, None, 422, "checks", "type", "lists"
    ),
}


def send(env: Env, case: Case) -> Any:
    path = case.path.format(check=env.check_id, entry=env.seeded.entry_ids["restricted"])
    headers = env.seeded.auth(case.who)
    if case.content_type is not None:
        headers["Content-Type"] = case.content_type
    return env.client.request(case.method, path, content=case.body, headers=headers)


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json", response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].startswith("/problems/")
    return body


@pytest.mark.parametrize("name", CASES)
def test_rejected_with_the_field_and_rule_named_and_nothing_recorded(env: Env, name: str) -> None:
    case = CASES[name]
    before = env.counts()
    body = assert_problem(send(env, case), case.status)
    assert {"field": case.field, "rule": case.rule} in [
        {"field": e["field"], "rule": e.get("rule")} for e in body["errors"]
    ], body
    assert env.counts() == before


def test_rejected_entry_rows_name_the_row_and_field(env: Env) -> None:
    before = env.counts()
    response = send(
        env,
        Case(
            "POST",
            "/v1/lists/entries",
            js([ROW, {**ROW, "subject_name": long(2001)}]),
            JSON,
            0,
            "",
            "",
            "lists",
        ),
    )
    body = assert_problem(response, 422)
    assert body["type"] == "/problems/rejected-rows"
    assert [e["field"] for e in body["errors"]] == ["rows[2].subject_name"]
    assert "2000" in body["errors"][0]["message"]
    assert env.counts() == before


def test_the_longest_accepted_values_are_accepted(env: Env) -> None:
    """The limits are where the docs say: at the limit is fine (characters, not bytes)."""
    response = env.client.post(
        "/v1/check",
        json={**CHECK, "matter_code": long(128), "case_ref": long(256)},
        headers=env.seeded.auth(),
    )
    assert response.status_code == 200, response.text
    assert response.json()["case_ref"] == long(256)


def test_unknown_paths_and_methods_are_problems(env: Env) -> None:
    assert_problem(env.client.get("/v1/nowhere", headers=env.seeded.auth()), 404)
    refused = env.client.delete("/v1/check/batch", headers=env.seeded.auth())
    assert_problem(refused, 405)
    assert "POST" in refused.headers["allow"]
    assert_problem(env.client.put("/v1/check", headers=env.seeded.auth()), 405)


def test_catalog_reload_ignores_any_body(env: Env) -> None:
    response = env.client.post(
        "/v1/admin/catalog/reload",
        content=DEEP + b"\xff",
        headers={**env.seeded.auth("admin"), "Content-Type": "text/plain"},
    )
    assert response.status_code == 200, response.text


# --- headers and the URL: granian's limits, before the app ------------------------------


def raw_status(port: int, request: bytes) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        head = b""
        while b"\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
    return int(head.split()[1])


@pytest.mark.slow
def test_granian_limits_headers_and_the_url(seeded: Seeded, tmp_path: Path) -> None:
    """granian (HTTP/1) answers 431 past 100 header fields or about 512 KiB of them, and
    414 past a 64 KiB request target, before the app sees the request; a header or
    query string that is not valid there is a 400. The app's own answers stay as they are."""
    server = Server(seeded.path).start()
    try:
        key = seeded.keys["approval"]
        start = f"GET /v1/check?uscc={RESTRICTED}&matter=bidding HTTP/1.1\r\nHost: x\r\n"
        head = f"{start}Authorization: Bearer {key}\r\nConnection: close\r\n".encode()
        assert raw_status(server.port, head + b"\r\n") == 200
        many = b"".join(b"X-Field-%d: v\r\n" % n for n in range(100))
        assert raw_status(server.port, head + many + b"\r\n") == 431
        assert raw_status(server.port, head + b"X-Big: " + b"a" * 600_000 + b"\r\n\r\n") == 431
        assert raw_status(server.port, head + b"X-Big: " + b"a" * 100_000 + b"\r\n\r\n") == 200
        target = f"GET /v1/check?uscc={RESTRICTED}&matter=bidding&case_ref={'a' * 70_000}"
        assert raw_status(server.port, f"{target} HTTP/1.1\r\nHost: x\r\n\r\n".encode()) == 414
        assert raw_status(server.port, head + b"X-Bad: \x01\xff\r\n\r\n") == 400
    finally:
        server.stop()

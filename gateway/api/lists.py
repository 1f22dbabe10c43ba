"""The Lists section of API.md (scope ``lists``): bulk upsert, the lifecycle of an entry
(objection, resolution, repair, revocation), grades, and the subject view.

Every change names who made it: the actor is the calling system and its key id.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import msgspec
from litestar import Request, Response, get, post, put
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody

from gateway.api.auth import caller_of, key_guard
from gateway.api.bodies import JSONBodyRequest, body_problem, unsupported_media
from gateway.identifiers import InvalidUSCC, validate_uscc
from gateway.lists import Rejection, parse_entries
from gateway.model import Caller, Grade, GradeValue, ListEntry, StatusChange
from gateway.problems import PROBLEM_JSON, FieldError, Problem, invalid, not_found
from gateway.service import uscc_problem
from gateway.store import EntryNotFound, InvalidTransition

if TYPE_CHECKING:
    from gateway.runtime import Runtime

T = TypeVar("T")
MAX_ROWS = 50_000
MAX_BODY = 64 * 1024 * 1024
#: The body of an entry's change or a grade: a few fields of at most 2,000 characters.
SMALL_BODY = 16 * 1024
Text = Annotated[str, msgspec.Meta(max_length=2000)]
_encode = msgspec.json.Encoder().encode
_decode_rows = msgspec.json.Decoder(list[dict[str, Any]]).decode
_decode_row = msgspec.json.Decoder(dict[str, Any]).decode


class ObjectionRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    opened_on: date
    note: Text = ""


class ResolveRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    upheld: bool
    note: Text = ""


class RepairRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    repaired_on: date
    decision_no: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class RevokeRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    note: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


class GradeRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    value: GradeValue
    source: Annotated[str, msgspec.Meta(max_length=200)] = ""
    as_of: date | None = None


# What the handlers answer. Their bodies are encoded directly; these Structs describe them
# in the OpenAPI document (and schemathesis checks that the answers conform).


class EntryView(ListEntry, frozen=True, kw_only=True):
    """An entry with its whole status history, oldest first."""

    history: list[StatusChange]


class UpsertSummary(msgspec.Struct, frozen=True):
    inserted: int
    updated: int
    unchanged: int
    #: Rows counted from 1; with ``allow_partial=true`` the valid rows were still applied.
    rejected: list[Rejection]
    #: The applied rows' entry ids, in input order (absent when nothing was applied).
    entry_ids: list[str] = []


class SubjectGrade(msgspec.Struct, frozen=True):
    uscc: str
    grade: Grade


class RecentMeasure(msgspec.Struct, frozen=True):
    code: str
    state: str


class RecentCheck(msgspec.Struct, frozen=True):
    check_id: str
    checked_at: str
    caller_id: int
    matter: str
    verdict: str
    measures: list[RecentMeasure]


class SubjectView(msgspec.Struct, frozen=True):
    uscc: str
    entries: list[EntryView]
    grade: Grade | None
    recent_checks: list[RecentCheck]


def _answer(view: type[msgspec.Struct], description: str) -> dict[int, ResponseSpec]:
    return {200: ResponseSpec(view, description=description, generate_examples=False)}


_ENTRY = _answer(EntryView, "The entry and its whole status history")


def actor(caller: Caller) -> str:
    return f"{caller.name} ({caller.department}) key {caller.key_id}"


def _rows(body: bytes, content_type: str) -> list[tuple[int, dict[str, Any]]]:
    """A JSON array, or NDJSON (one object a line), as numbered rows."""
    if "ndjson" in content_type or "jsonl" in content_type:
        return [
            (n, _decode(_decode_row, line, n))
            for n, line in enumerate(body.splitlines(), start=1)
            if line.strip()
        ]
    if not body.strip():
        raise invalid("body", "a JSON array of entries is required", "required")
    return list(enumerate(_decode(_decode_rows, body, None), start=1))


_ROW_AT = re.compile(r" - at `\$\[(\d+)\]")


def _decode(decode: Callable[[bytes], T], data: bytes, line: int | None) -> T:
    """``decode(data)``; a body that is not JSON is a 400, JSON that is not objects a 422
    naming the row (``line``: the NDJSON line decoded, counted from 1)."""
    try:
        return decode(data)
    except msgspec.ValidationError as exc:
        text = str(exc)
        at = _ROW_AT.search(text)
        row = line if line is not None else int(at.group(1)) + 1 if at else None
        raise invalid(
            f"rows[{row}]" if row else "body",
            f"expected a JSON array of entries (objects) or NDJSON: {text.partition(' - at')[0]}",
            "type",
        ) from None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise body_problem(exc, "body" if line is None else f"rows[{line}]") from None


@post(
    "/v1/lists/entries",
    tags=["lists"],
    status_code=200,
    request_max_body_size=MAX_BODY,
    summary="Upsert list entries (JSON array or NDJSON), idempotent on (source, source_id)",
    responses=_answer(UpsertSummary, "What was applied, and every rejected row"),
    guards=[key_guard("lists")],
)
async def upsert_entries(
    request: Request[Any, Any, Any], allow_partial: FromQuery[bool] = False
) -> Response[bytes]:
    """All or nothing: if a row is rejected nothing is applied (422 listing every rejected
    row, field and reason), unless ``allow_partial=true``."""
    rt: Runtime = request.app.state.runtime
    caller = caller_of(request)
    content_type = request.headers.get("content-type", "")
    if "json" not in content_type:
        raise unsupported_media("application/json (an array) or application/x-ndjson")
    rows = _rows(await request.body(), content_type)
    if len(rows) > MAX_ROWS:
        raise Problem(
            413,
            "too-many-rows",
            "Too many rows",
            f"{len(rows)} rows; send at most {MAX_ROWS} per request",
        )
    entries, rejected = parse_entries(rows, rt.service.catalog)
    summary: dict[str, Any] = {
        "inserted": 0,
        "updated": 0,
        "unchanged": 0,
        "rejected": [msgspec.to_builtins(r) for r in rejected],
    }
    if rejected and not allow_partial:
        body = {
            "type": "/problems/rejected-rows",
            "title": "Rows rejected",
            "status": 422,
            "detail": f"{len(rejected)} rejection(s) in {len(rows)} rows; nothing applied",
            "errors": [
                {"field": f"rows[{r.row}].{r.field}", "message": r.message} for r in rejected
            ],
            **summary,
        }
        return Response(_encode(body), status_code=422, media_type=PROBLEM_JSON)
    if entries:
        result = await rt.store.upsert_entries(entries, actor(caller))
        rt.lists_changed()
        summary.update(
            inserted=result.inserted,
            updated=result.updated,
            unchanged=result.unchanged,
            entry_ids=result.entry_ids,
        )
    return Response(_encode(summary), media_type="application/json")


async def _transition(request: Request[Any, Any, Any], entry_id: str, act: Any) -> bytes:
    rt: Runtime = request.app.state.runtime
    caller = caller_of(request)
    try:
        entry: ListEntry = await act(rt, actor(caller))
        rt.lists_changed()
    except EntryNotFound:
        raise not_found(f"no list entry {entry_id!r}") from None
    except InvalidTransition as exc:
        raise Problem(
            409,
            "invalid-transition",
            "Not allowed in the entry's status",
            str(exc),
            [FieldError("status", f"current status is {exc.current!r}", "transition")],
        ) from None
    return await _entry_view(rt, entry)


async def _entry_view(rt: Runtime, entry: ListEntry) -> bytes:
    history = await rt.store.entry_history(entry.entry_id)
    return _encode({**msgspec.to_builtins(entry), "history": msgspec.to_builtins(history)})


def _ok(body: bytes) -> Response[bytes]:
    return Response(body, media_type="application/json")


@post(
    "/v1/entries/{entry_id:str}/objection",
    tags=["lists"],
    status_code=200,
    summary="Open an objection (异议): punishments are suspended while it is verified",
    request_max_body_size=SMALL_BODY,
    request_class=JSONBodyRequest,
    responses=_ENTRY,
    guards=[key_guard("lists")],
)
async def open_objection(
    request: Request[Any, Any, Any], entry_id: FromPath[str], data: JSONBody[ObjectionRequest]
) -> Response[bytes]:
    return _ok(
        await _transition(
            request,
            entry_id,
            lambda rt, who: rt.store.open_objection(entry_id, data.opened_on, data.note, who),
        )
    )


@post(
    "/v1/entries/{entry_id:str}/objection/resolve",
    tags=["lists"],
    status_code=200,
    summary="Resolve an objection: upheld → revoked, not upheld → active",
    request_max_body_size=SMALL_BODY,
    request_class=JSONBodyRequest,
    responses=_ENTRY,
    guards=[key_guard("lists")],
)
async def resolve_objection(
    request: Request[Any, Any, Any], entry_id: FromPath[str], data: JSONBody[ResolveRequest]
) -> Response[bytes]:
    return _ok(
        await _transition(
            request,
            entry_id,
            lambda rt, who: rt.store.resolve_objection(entry_id, data.upheld, data.note, who),
        )
    )


@post(
    "/v1/entries/{entry_id:str}/repair",
    tags=["lists"],
    status_code=200,
    summary="Credit repair (信用修复): the entry stops producing measures at once",
    request_max_body_size=SMALL_BODY,
    request_class=JSONBodyRequest,
    responses=_ENTRY,
    guards=[key_guard("lists")],
)
async def repair(
    request: Request[Any, Any, Any], entry_id: FromPath[str], data: JSONBody[RepairRequest]
) -> Response[bytes]:
    return _ok(
        await _transition(
            request,
            entry_id,
            lambda rt, who: rt.store.repair(entry_id, data.repaired_on, data.decision_no, who),
        )
    )


@post(
    "/v1/entries/{entry_id:str}/revoke",
    tags=["lists"],
    status_code=200,
    summary="Revoke an entry",
    request_max_body_size=SMALL_BODY,
    request_class=JSONBodyRequest,
    responses=_ENTRY,
    guards=[key_guard("lists")],
)
async def revoke(
    request: Request[Any, Any, Any], entry_id: FromPath[str], data: JSONBody[RevokeRequest]
) -> Response[bytes]:
    return _ok(
        await _transition(
            request, entry_id, lambda rt, who: rt.store.revoke(entry_id, data.note, who)
        )
    )


def _subject_code(uscc: str) -> str:
    try:
        return validate_uscc(uscc)
    except InvalidUSCC as exc:
        raise uscc_problem(exc) from None


@put(
    "/v1/subjects/{uscc:str}/grade",
    tags=["lists"],
    status_code=200,
    summary="Set a subject's credit grade (分级分类)",
    request_max_body_size=SMALL_BODY,
    request_class=JSONBodyRequest,
    responses=_answer(SubjectGrade, "The grade as set"),
    guards=[key_guard("lists")],
)
async def put_grade(
    request: Request[Any, Any, Any], uscc: FromPath[str], data: JSONBody[GradeRequest]
) -> Response[bytes]:
    rt: Runtime = request.app.state.runtime
    caller = caller_of(request)
    code = _subject_code(uscc)
    grade = Grade(data.value, data.source, data.as_of)
    await rt.store.put_grade(code, grade, actor(caller))
    rt.lists_changed()
    return _ok(_encode({"uscc": code, "grade": msgspec.to_builtins(grade)}))


@get(
    "/v1/subjects/{uscc:str}",
    tags=["lists"],
    summary="A subject: every entry with its status history, its grade and its recent checks",
    responses=_answer(SubjectView, "The subject"),
    guards=[key_guard("lists", "reports")],
)
async def get_subject(
    request: Request[Any, Any, Any], uscc: FromPath[str], checks: FromQuery[int] = 20
) -> Response[bytes]:
    rt: Runtime = request.app.state.runtime
    code = _subject_code(uscc)
    if not 0 <= checks <= 200:
        raise invalid("checks", "between 0 and 200")
    entries = await rt.store.subject_entries(code)
    views = [msgspec.json.decode(await _entry_view(rt, e)) for e in entries]
    grade = await rt.store.get_grade(code)
    if checks:
        await rt.checks_settled()  # the checks answered so far listed
    recent = await rt.store.recent_checks(code, limit=checks) if checks else []
    body = {
        "uscc": code,
        "entries": views,
        "grade": msgspec.to_builtins(grade) if grade else None,
        "recent_checks": [
            {
                "check_id": c.check_id,
                "checked_at": c.checked_at,
                "caller_id": c.caller_id,
                "matter": c.matter,
                "verdict": c.verdict,
                "measures": [{"code": m, "state": s} for m, s in c.measures],
            }
            for c in recent
        ],
    }
    return _ok(_encode(body))

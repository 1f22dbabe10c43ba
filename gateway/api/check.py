"""``GET``/``POST /v1/check`` (the hot path) and ``POST /v1/check/batch``.

The single check is a raw ASGI route inside Litestar: Litestar's typed
pipeline costs about 60% of a request on this path (../shared/bench), and
this route must also authenticate, validate, decide and wait for a durable
record. Its OpenAPI description comes from typed signatures in
``gateway.api.docs``. The batch check, where the framework's cost is shared
by up to 1,000 codes, is an ordinary typed handler.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import parse_qsl

import msgspec
from litestar import Request, Response, asgi, post
from litestar.params import JSONBody
from litestar.types import ASGIApp, Receive, Scope, Send

from gateway.api.auth import caller_of, key_guard
from gateway.api.bodies import (
    JSONBodyRequest,
    body_problem,
    content_length,
    is_json_scope,
    read_body,
    unsupported_media,
    validation_problem,
)
from gateway.ids import uuid7
from gateway.logs import HEADER
from gateway.model import CheckRecord
from gateway.privacy import redact
from gateway.problems import PROBLEM_JSON, FieldError, Problem, ProblemBody, invalid, overloaded

if TYPE_CHECKING:
    from gateway.runtime import Runtime

MAX_CHECK_BODY = 16 * 1024
MAX_BATCH = 1_000
#: Codes a batch decides before it lets the event loop serve other requests (about 0.7 ms
#: of work here): a batch of 1,000 decided in one go held every single check that arrived
#: meanwhile for its 13-15 ms.
BATCH_CODES_PER_TURN = 50
_JSON_HEADERS = [(b"content-type", b"application/json")]
_PROBLEM_HEADERS = [(b"content-type", PROBLEM_JSON.encode())]
_TRUE = {"true": True, "1": True, "false": False, "0": False, "": False}


#: Examples in the OpenAPI document: codes on the black list, clear, and invalid in the
#: test data (tests/fixtures.py), and a matter type of the packaged catalog.
_EXAMPLE_USCC = "91110000600037341L"
_EXAMPLE_CODES = [_EXAMPLE_USCC, "9144030071526726XG", "91110000600037341M"]
_EXAMPLE_MATTER = "bidding"


class CheckRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    uscc: Annotated[str, msgspec.Meta(max_length=64, examples=[_EXAMPLE_USCC])]
    matter: Annotated[str, msgspec.Meta(max_length=64, examples=[_EXAMPLE_MATTER])]
    matter_code: Annotated[str, msgspec.Meta(max_length=128)] | None = None
    case_ref: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    commitment: bool = False


class BatchRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    matter: Annotated[str, msgspec.Meta(max_length=64, examples=[_EXAMPLE_MATTER])]
    #: At least one code; more than ``MAX_BATCH`` is a 413 (batch-too-large).
    uscc: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=64)]],
        msgspec.Meta(min_length=1, examples=[_EXAMPLE_CODES]),
    ]
    matter_code: Annotated[str, msgspec.Meta(max_length=128)] | None = None
    case_ref: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    commitment: bool = False


class BatchItemError(msgspec.Struct, frozen=True):
    uscc: str
    error: msgspec.Raw


class BatchResponse(msgspec.Struct, frozen=True):
    batch_id: str
    results: list[msgspec.Raw]


class BatchItemErrorView(msgspec.Struct, frozen=True):
    """An invalid code of a batch, as sent, with its problem (OpenAPI document only)."""

    uscc: str
    error: ProblemBody


_decode_check = msgspec.json.Decoder(CheckRequest).decode
_encode = msgspec.json.Encoder().encode

#: Longest accepted value of each query parameter (as in CheckRequest).
_QUERY_LIMITS = {"uscc": 64, "matter": 64, "matter_code": 128, "case_ref": 256}


def _query_params(query_string: bytes) -> dict[str, str]:
    """The query's parameters (the last of a repeated name), as ``parse_qsl`` reads them
    with blank values kept; a query without escapes is split directly (a fifth of the
    time: most callers send codes and matter names as they are).

    >>> _query_params(b"uscc=91110000600037341L&matter=bidding&commitment&&x=")
    {'uscc': '91110000600037341L', 'matter': 'bidding', 'commitment': '', 'x': ''}
    >>> _query_params(b"case_ref=%E6%B5%99+1&case_ref=2")
    {'case_ref': '2'}
    >>> _query_params(b"case_ref=%E6%B5%99+1")
    {'case_ref': '浙 1'}
    """
    text = query_string.decode()
    if "%" in text or "+" in text:
        return dict(parse_qsl(text, keep_blank_values=True, errors="strict"))
    params = {}
    for pair in text.split("&"):
        if pair:
            name, _, value = pair.partition("=")
            params[name] = value
    return params


def _parse_query(query_string: bytes) -> CheckRequest:
    try:
        params = _query_params(query_string)
    except UnicodeDecodeError:
        message = "the query string is not valid UTF-8 (percent-decoded)"
        raise Problem(
            400,
            "invalid-encoding",
            "Invalid encoding",
            message,
            [FieldError("query", message, "utf8")],
        ) from None
    for field in ("uscc", "matter"):
        if not params.get(field):
            raise invalid(field, "required query parameter is missing", "required")
    for field, limit in _QUERY_LIMITS.items():
        if len(params.get(field) or "") > limit:
            raise invalid(field, f"longer than {limit} characters", "max_length")
    commitment = _TRUE.get(params.get("commitment", "").lower())
    if commitment is None:
        raise invalid("commitment", "must be true or false", "type")
    return CheckRequest(
        params["uscc"],
        params["matter"],
        params.get("matter_code") or None,
        params.get("case_ref") or None,
        commitment,
    )


def check_route(handler: ASGIApp) -> Any:
    """``handler`` as Litestar's ``/v1/check`` route (the app answers that exact path before
    routing, see :class:`gateway.app.GatewayApp`; the route serves what else reaches it)."""
    return asgi("/v1/check", name="check", copy_scope=False)(handler)


def check_handler(rt: Runtime) -> ASGIApp:
    """The raw ASGI handler of ``GET`` and ``POST /v1/check``, bound to one runtime."""

    async def check(scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        try:
            method = scope["method"]  # type: ignore[typeddict-item]
            if method == "GET":
                caller = rt.keys.authenticate(scope["headers"], "check")
                request = _parse_query(scope["query_string"])
            elif method == "POST":
                caller = rt.keys.authenticate(scope["headers"], "check")
                if not is_json_scope(scope):
                    raise unsupported_media()
                body = await read_body(receive, MAX_CHECK_BODY, content_length(scope))
                if not body:
                    raise invalid("body", "a JSON body is required", "required")
                try:
                    request = _decode_check(body)
                except msgspec.ValidationError as exc:
                    raise validation_problem(str(exc)) from None
                except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
                    raise body_problem(exc) from None
            else:
                raise Problem(
                    405,
                    "method-not-allowed",
                    "Method not allowed",
                    "use GET or POST",
                    headers={"allow": "GET, POST"},
                )
            record = rt.service.prepare(
                caller,
                request.uscc,
                request.matter,
                matter_code=request.matter_code,
                case_ref=request.case_ref,
                commitment=request.commitment,
                started=started,
            )
            await rt.service.record([record])
            took = time.perf_counter() - started
            rt.metrics.tally.took("check", took)
        except Problem as problem:
            rt.metrics.tally.problem("check", problem.status)
            await _send(
                send,
                problem.status,
                problem.encode(),
                [
                    *_PROBLEM_HEADERS,
                    _request_id(scope),
                    *((k.encode(), v.encode()) for k, v in problem.headers.items()),
                ],
            )
            return
        except Exception:  # an answer is always problem+json, even for a bug
            rid = _request_id(scope)
            rt.log_exception("check failed", rid[1].decode())
            rt.metrics.tally.problem("check", 500)
            failure = Problem(500, "internal", "Internal error", "the check failed; retry")
            await _send(send, 500, failure.encode(), [*_PROBLEM_HEADERS, rid])
            return
        await _send(
            send,
            200,
            record.response,
            [*_JSON_HEADERS, _server_timing(took), _request_id(scope)],
        )

    return check


def _request_id(scope: Scope) -> tuple[bytes, bytes]:
    """``X-Request-ID`` of the request, as :class:`gateway.app.GatewayApp` set it: bytes
    when it answered ``/v1/check`` itself, text when the request went through Litestar."""
    value: Any = (scope.get("state") or {}).get("request_id", b"")
    return HEADER, value if isinstance(value, bytes) else value.encode()


def _server_timing(seconds: float) -> tuple[bytes, bytes]:
    """``Server-Timing: app;dur=<ms>``: the server's own time for the request, recording
    included (what a caller's clock adds is the network and its own client)."""
    return b"server-timing", b"app;dur=%.2f" % (seconds * 1000)


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    start: Any = {
        "type": "http.response.start",
        "status": status,
        "headers": [*headers, (b"content-length", str(len(body)).encode())],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body, "more_body": False})


@post(
    "/v1/check/batch",
    status_code=200,
    summary="Check up to 1,000 subjects for one matter",
    tags=["check"],
    request_max_body_size=256 * 1024,
    request_class=JSONBodyRequest,
    guards=[key_guard("check")],
)
async def check_batch(
    request: Request[Any, Any, Any], data: JSONBody[BatchRequest]
) -> Response[bytes]:
    """Every code is checked and recorded on its own (its own ``check_id``); the results come
    in input order, an invalid code yielding ``{"uscc", "error": problem}`` in its place."""
    started = time.perf_counter()
    rt: Runtime = request.app.state.runtime
    caller = caller_of(request)
    if len(data.uscc) > MAX_BATCH:
        message = f"{len(data.uscc)} codes; a batch holds at most {MAX_BATCH}"
        raise Problem(
            413,
            "batch-too-large",
            "Batch too large",
            message,
            [FieldError("uscc", message, "max_items")],
        )
    rt.service.check_matter(data.matter)
    if rt.recorder.depth + len(data.uscc) > rt.recorder.max_queue:
        raise overloaded(1)  # refused whole rather than recorded in part
    batch_id = uuid7()
    results: list[msgspec.Raw] = []
    records: list[CheckRecord] = []
    for index, code in enumerate(data.uscc):
        if index and not index % BATCH_CODES_PER_TURN:
            await asyncio.sleep(0)
        try:
            record = rt.service.prepare(
                caller,
                code,
                data.matter,
                matter_code=data.matter_code,
                case_ref=data.case_ref,
                commitment=data.commitment,
                batch_id=batch_id,
            )
        except Problem as problem:
            results.append(
                msgspec.Raw(_encode(BatchItemError(redact(code), msgspec.Raw(problem.encode()))))
            )
            continue
        records.append(record)
        results.append(msgspec.Raw(record.response))
    # One commit for the whole batch (and one fsync), at the end of this turn of the loop.
    await rt.service.wait(rt.service.submit(records))
    took = time.perf_counter() - started
    rt.metrics.tally.took("batch", took)
    body = _encode(BatchResponse(batch_id, results))
    name, timing = _server_timing(took)
    return Response(body, media_type="application/json", headers={name.decode(): timing.decode()})

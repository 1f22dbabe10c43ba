"""``POST /v1/checks/{check_id}/feedback`` (反馈) and ``GET /v1/checks/{check_id}``."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from litestar import Request, Response, get, post
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody

from gateway.api.auth import caller_of, key_guard
from gateway.api.bodies import JSONBodyRequest
from gateway.clock import CST
from gateway.model import FeedbackRecord, MeasureFeedback
from gateway.problems import FieldError, Problem, not_found
from gateway.service import CheckResponse

if TYPE_CHECKING:
    from gateway.runtime import Runtime


class MeasureFeedbackRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One measure as reported (the limits hold for what is sent; stored feedback is read
    back as :class:`MeasureFeedback`, without them)."""

    code: Annotated[str, msgspec.Meta(max_length=64)]
    executed: bool
    reason: Annotated[str, msgspec.Meta(max_length=2000)] | None = None


class FeedbackRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    measures: Annotated[list[MeasureFeedbackRequest], msgspec.Meta(max_length=200)]
    outcome: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    handled_by: Annotated[str, msgspec.Meta(max_length=128)] | None = None
    handled_at: datetime | None = None


class FeedbackView(msgspec.Struct, frozen=True):
    check_id: str
    measures: tuple[MeasureFeedback, ...]
    outcome: str
    handled_by: str | None
    handled_at: str | None
    received_at: str


class CheckView(CheckResponse, frozen=True, kw_only=True):
    """A check as answered (its body exactly as sent), with its feedback."""

    feedback: FeedbackView | None


_encode = msgspec.json.Encoder().encode
_STORED = ResponseSpec(FeedbackView, description="The feedback as stored", generate_examples=False)


def _view(record: FeedbackRecord) -> FeedbackView:
    return FeedbackView(
        record.check_id,
        record.measures,
        record.outcome,
        record.handled_by,
        record.handled_at,
        record.received_at,
    )


def _validate(data: JSONBody[FeedbackRequest], answered: dict[str, str]) -> None:
    """Every applied measure reported once, nothing else, a reason for each not executed."""
    errors: list[FieldError] = []
    seen: set[str] = set()
    for n, item in enumerate(data.measures):
        where = f"measures[{n}]"
        if item.code not in answered:
            errors.append(
                FieldError(
                    f"{where}.code",
                    f"{item.code!r} was not returned by this check",
                    "unknown_measure",
                )
            )
        elif item.code in seen:
            errors.append(
                FieldError(f"{where}.code", f"{item.code!r} is reported twice", "duplicate_measure")
            )
        if not item.executed and not (item.reason or "").strip():
            errors.append(
                FieldError(
                    f"{where}.reason", "a measure not executed needs a reason", "reason_required"
                )
            )
        seen.add(item.code)
    missing = [code for code, state in answered.items() if state == "apply" and code not in seen]
    errors.extend(
        FieldError(
            "measures",
            f"measure {code!r} was applied by the check and must be reported",
            "missing_measure",
        )
        for code in missing
    )
    if errors:
        raise Problem(
            422,
            "invalid-feedback",
            "Invalid feedback",
            "; ".join(f"{e.field}: {e.message}" for e in errors),
            errors,
        )


@post(
    "/v1/checks/{check_id:str}/feedback",
    tags=["feedback"],
    status_code=201,
    summary="Report which measures were executed (反馈)",
    request_max_body_size=64 * 1024,
    request_class=JSONBodyRequest,
    responses={
        201: _STORED,
        200: ResponseSpec(
            FeedbackView,
            description="The identical feedback again: the feedback as stored",
            generate_examples=False,
        ),
    },
    guards=[key_guard("feedback")],
)
async def post_feedback(
    request: Request[Any, Any, Any], check_id: FromPath[str], data: JSONBody[FeedbackRequest]
) -> Response[bytes]:
    """201 on the first feedback; the identical body again is 200; a different one 409."""
    rt: Runtime = request.app.state.runtime
    caller = caller_of(request)
    check = await rt.find_check(check_id)
    if check is None or check.caller_id != caller.caller_id:
        raise not_found(f"no check {check_id!r} made by this caller")
    _validate(data, dict(check.measures))
    body = msgspec.json.encode(data)
    record = FeedbackRecord(
        check_id=check_id,
        caller_id=caller.caller_id,
        measures=tuple([MeasureFeedback(m.code, m.executed, m.reason) for m in data.measures]),
        outcome=data.outcome,
        handled_by=data.handled_by,
        handled_at=data.handled_at.isoformat() if data.handled_at else None,
        received_at=datetime.now(CST).isoformat(timespec="milliseconds"),
        body=body,
    )
    inserted = await rt.service.record_feedback(record)
    if inserted:
        return Response(_encode(_view(record)), status_code=201, media_type="application/json")
    existing = await rt.store.get_feedback(check_id)
    if existing is not None and existing.body == body:
        return Response(_encode(_view(existing)), status_code=200, media_type="application/json")
    raise Problem(
        409,
        "feedback-conflict",
        "Feedback already given",
        "this check already has different feedback; feedback cannot be changed",
    )


@get(
    "/v1/checks/{check_id:str}",
    tags=["feedback"],
    summary="A check as answered, with its feedback",
    responses={
        200: ResponseSpec(
            CheckView, description="The check and its feedback", generate_examples=False
        )
    },
    guards=[key_guard("check", "feedback", "reports")],
)
async def get_check(request: Request[Any, Any, Any], check_id: FromPath[str]) -> Response[bytes]:
    """The caller's own check, or any check with scope ``reports``."""
    rt: Runtime = request.app.state.runtime
    caller = caller_of(request)
    check = await rt.find_check(check_id)
    if check is None or (check.caller_id != caller.caller_id and "reports" not in caller.scopes):
        raise not_found(f"no check {check_id!r} visible to this caller")
    feedback = await rt.store.get_feedback(check_id)
    answered = msgspec.json.decode(check.response)
    answered["feedback"] = msgspec.to_builtins(_view(feedback)) if feedback else None
    return Response(_encode(answered), media_type="application/json")

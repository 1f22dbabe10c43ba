"""RFC 9457 problem details: every error the API returns, as ``application/problem+json``.

``{type, title, status, detail, errors: [{field, message, rule?}]}``: ``errors``
names each failing field and, for identifiers, the rule that failed.

A problem often quotes what the caller sent; every citizen ID number in its
detail and its errors is masked when it is built (:func:`gateway.privacy.redact`).
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from gateway.privacy import redact

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "/problems/"


class FieldError(msgspec.Struct, frozen=True, omit_defaults=True):
    field: str
    message: str
    rule: str | None = None


class ProblemBody(msgspec.Struct, frozen=True):
    type: str
    title: str
    status: int
    detail: str
    errors: Sequence[FieldError] = ()


def _redacted(error: FieldError) -> FieldError:
    field, message = redact(error.field), redact(error.message)
    if field is error.field and message is error.message:
        return error
    return FieldError(field, message, error.rule)


class Problem(Exception):
    """Raise to answer with a problem; ``kind`` becomes the type URI ``/problems/<kind>``."""

    def __init__(
        self,
        status: int,
        kind: str,
        title: str,
        detail: str,
        errors: Sequence[FieldError] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        detail = redact(detail)
        super().__init__(detail)
        errors = tuple(_redacted(e) for e in errors)
        self.body = ProblemBody(TYPE_BASE + kind, title, status, detail, errors)
        self.status = status
        self.headers = headers or {}

    def encode(self) -> bytes:
        return msgspec.json.encode(self.body)


def invalid(
    field: str,
    message: str,
    rule: str | None = None,
    *,
    kind: str = "invalid-request",
    title: str = "Invalid request",
) -> Problem:
    """422 for one failing field."""
    return Problem(422, kind, title, f"{field}: {message}", [FieldError(field, message, rule)])


def unauthorized(detail: str) -> Problem:
    return Problem(
        401,
        "unauthorized",
        "Missing or unknown API key",
        detail,
        headers={"www-authenticate": 'Bearer realm="gateway"'},
    )


def forbidden(scope: str) -> Problem:
    return Problem(
        403,
        "forbidden",
        "Scope missing",
        f"this API key lacks the scope {scope!r} this endpoint needs",
    )


def not_found(what: str) -> Problem:
    return Problem(404, "not-found", "Not found", what)


def overloaded(retry_after: int) -> Problem:
    return Problem(
        503,
        "overloaded",
        "Service busy",
        "the check could not be recorded durably in time; retry shortly",
        headers={"retry-after": str(retry_after)},
    )

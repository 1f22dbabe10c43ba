"""Typed signatures of the raw ASGI check route, used only to describe it in OpenAPI.

Litestar leaves ASGI routes out of the schema; these handlers are never
mounted on the served app: ``merge_check_docs`` renders them in a throwaway
app and copies the path and its component schemas into the real document.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar, get, post
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.spec import OpenAPI
from litestar.params import FromQuery, JSONBody

from gateway.api.check import CheckRequest
from gateway.problems import ProblemBody
from gateway.service import CheckResponse

_RESPONSES = {
    401: ResponseSpec(
        ProblemBody, description="Missing or unknown API key", media_type="application/problem+json"
    ),
    403: ResponseSpec(
        ProblemBody,
        description="The key lacks the scope 'check'",
        media_type="application/problem+json",
    ),
    413: ResponseSpec(
        ProblemBody, description="Body too large", media_type="application/problem+json"
    ),
    415: ResponseSpec(
        ProblemBody, description="Not application/json", media_type="application/problem+json"
    ),
    422: ResponseSpec(
        ProblemBody,
        description="Invalid USCC (the failed rule is named) or unknown matter type",
        media_type="application/problem+json",
    ),
    503: ResponseSpec(
        ProblemBody,
        description="The check could not be recorded durably in "
        "time; retry after Retry-After seconds",
        media_type="application/problem+json",
    ),
}
_DESCRIPTION = (
    "Which measures apply to the subject for the matter, with their legal basis and "
    "the entries that triggered them. A 200 means the check is recorded durably."
)


@get(
    "/v1/check",
    tags=["check"],
    summary="Check one subject (query parameters)",
    description=_DESCRIPTION,
    responses=_RESPONSES,
    operation_id="CheckGet",
)
async def check_get(
    uscc: FromQuery[str],
    matter: FromQuery[str],
    matter_code: FromQuery[str | None] = None,
    case_ref: FromQuery[str | None] = None,
    commitment: FromQuery[bool] = False,
) -> CheckResponse:
    raise NotImplementedError  # documentation only


@post(
    "/v1/check",
    tags=["check"],
    summary="Check one subject",
    status_code=200,
    description=_DESCRIPTION,
    responses=_RESPONSES,
    operation_id="CheckPost",
)
async def check_post(data: JSONBody[CheckRequest]) -> CheckResponse:
    raise NotImplementedError  # documentation only


def merge_check_docs(schema: OpenAPI) -> None:
    """Add ``/v1/check`` (GET and POST) and the schemas it uses to ``schema``."""
    docs: Any = Litestar(
        [check_get, check_post], openapi_config=OpenAPIConfig(title="docs", version="0")
    ).openapi_schema
    schema.paths = {**(schema.paths or {}), "/v1/check": docs.paths["/v1/check"]}
    for name, component in (docs.components.schemas or {}).items():
        schema.components.schemas.setdefault(name, component)

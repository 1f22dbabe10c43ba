"""The hand-written parts of the OpenAPI document: what Litestar cannot derive from the
served handlers' signatures.

- ``/v1/check`` (GET and POST) is a raw ASGI route, which Litestar leaves out;
- ``POST /v1/lists/entries`` reads its body raw (a JSON array or NDJSON);
- ``POST /v1/check/batch`` answers, per code, a check or an error: a union of Structs
  that msgspec (and so Litestar) cannot describe untagged;
- ``GET /v1/catalog`` sends the catalog encoded once per catalog;
- every error is ``application/problem+json`` (RFC 9457), which Litestar documents as
  its own ``400`` body or not at all.

``/v1/check``, the catalog and a batch's per-code error are typed signatures of handlers
that are never mounted on the served app: ``merge_check_docs`` renders them in a
throwaway app and copies what they describe, and their component schemas, into the real
document; the entries' body and the batch's answer are written out. The problems each
operation can answer are derived from what it takes (a key, a body, parameters), plus
the few only some operations give (:data:`_SPECIFIC`). Schemathesis checks every answer
of the served app against the result (tests/api/test_schemathesis.py).
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Litestar, get, post
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.spec import (
    Components,
    Example,
    OpenAPI,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Reference,
    RequestBody,
    Schema,
    SecurityScheme,
)
from litestar.params import FromQuery, JSONBody, Parameter

from gateway.api.check import BatchItemErrorView, CheckRequest
from gateway.api.ops import CatalogView
from gateway.problems import PROBLEM_JSON, ProblemBody
from gateway.service import CheckResponse

#: A valid code (on the black list in the test data) and a matter type, as examples.
_USCC = "91110000600037341L"
_MATTER = "bidding"

_DESCRIPTION = (
    "Which measures apply to the subject for the matter, with their legal basis and "
    "the entries that triggered them. A 200 means the check is recorded durably."
)
_CHECK_422 = "Invalid USCC (the failed rule is named), unknown matter type, or a field invalid"


def _problem_spec(description: str) -> ResponseSpec:
    return ResponseSpec(
        ProblemBody, description=description, media_type=PROBLEM_JSON, generate_examples=False
    )


@get(
    "/v1/check",
    tags=["check"],
    summary="Check one subject (query parameters)",
    description=_DESCRIPTION,
    responses={422: _problem_spec(_CHECK_422)},
    operation_id="CheckGet",
)
async def check_get(
    uscc: Annotated[str, Parameter(max_length=64, examples=[Example(value=_USCC)])],
    matter: Annotated[str, Parameter(max_length=64, examples=[Example(value=_MATTER)])],
    matter_code: Annotated[str | None, Parameter(max_length=128)] = None,
    case_ref: Annotated[str | None, Parameter(max_length=256)] = None,
    commitment: FromQuery[bool] = False,
) -> CheckResponse:
    raise NotImplementedError  # documentation only


@post(
    "/v1/check",
    tags=["check"],
    summary="Check one subject",
    status_code=200,
    description=_DESCRIPTION,
    responses={422: _problem_spec(_CHECK_422)},
    operation_id="CheckPost",
)
async def check_post(data: JSONBody[CheckRequest]) -> CheckResponse:
    raise NotImplementedError  # documentation only


@get("/v1/catalog")
async def catalog_answer() -> CatalogView:
    raise NotImplementedError  # documentation only: the 200


@get("/batch-item-error")
async def batch_item_error() -> BatchItemErrorView:
    raise NotImplementedError  # documentation only: the component


#: Rows are taken as file imports take them (any JSON value is read as text, every problem
#: is reported per row), so the schema says only "objects"; a row's fields are API.md's.
_ENTRIES_BODY = RequestBody(
    required=True,
    description="A JSON array of entry rows (application/json), or NDJSON: one row a line "
    "(application/x-ndjson); at most 50,000 rows and 64 MiB. A row has uscc, list_type and "
    "listed_on (YYYY-MM-DD), and may have subject_name, authority, reason, basis, "
    "document_no, expires_on, source and source_id: text of at most 2,000 characters each. "
    "Rows with problems are listed (rows[N].field), never applied.",
    content={
        "application/json": OpenAPIMediaType(
            schema=Schema(
                type=OpenAPIType.ARRAY,
                items=Schema(type=OpenAPIType.OBJECT),
                examples=[
                    [
                        {
                            "uscc": "9144030071526726XG",
                            "list_type": "wage_arrears",
                            "listed_on": "2026-06-01",
                            "subject_name": "某某劳务有限公司",
                            "source": "hz-hrss",
                            "source_id": "W-1",
                        }
                    ]
                ],
            )
        )
    },
)
_REF = "#/components/schemas/"
_PROBLEM = Reference(_REF + "ProblemBody")
_RETRY_AFTER: dict[str, OpenAPIHeader | Reference] = {
    "Retry-After": OpenAPIHeader(
        schema=Schema(type=OpenAPIType.INTEGER), description="Seconds to wait", required=True
    )
}
_AUTH = {
    401: "Missing, unknown, revoked or expired API key",
    403: "The key lacks the scope this operation needs",
    429: "The key's rate limit is exceeded; retry after Retry-After seconds",
}
_BODY = {
    400: "The body is not JSON, not UTF-8, or nested too deeply",
    413: "The body is larger than this operation accepts",
    415: "The body is not sent as application/json",
    422: "A field is missing, unknown or invalid (named in errors[].field, with its rule)",
}
_PARAMETERS = {422: "A parameter is invalid (named in errors[].field, with its rule)"}
_PATH = {404: "No such resource (or not visible to this caller)"}
#: Problems only some operations give, beyond what they take tells.
_SPECIFIC: dict[tuple[str, str], dict[int, str]] = {
    ("get", "/v1/check"): {
        400: "The query string is not UTF-8 once percent-decoded",
        503: "The check could not be recorded durably in time; retry after Retry-After seconds",
    },
    ("post", "/v1/check"): {
        503: "The check could not be recorded durably in time; retry after Retry-After seconds",
    },
    ("post", "/v1/check/batch"): {
        413: "The body is larger than 256 KiB, or holds more than 1,000 codes",
        503: "The batch could not be recorded durably in time; retry after Retry-After seconds",
    },
    ("post", "/v1/checks/{check_id}/feedback"): {
        409: "This check already has different feedback",
        503: "The feedback could not be recorded durably in time; retry after Retry-After seconds",
    },
    ("post", "/v1/lists/entries"): {
        422: "Rows rejected (nothing applied): errors[].field is rows[N].field; the body also "
        "carries inserted, updated, unchanged and rejected",
    },
    ("post", "/v1/entries/{entry_id}/objection"): {409: "Not allowed in the entry's status"},
    ("post", "/v1/entries/{entry_id}/objection/resolve"): {
        409: "Not allowed in the entry's status"
    },
    ("post", "/v1/entries/{entry_id}/repair"): {409: "Not allowed in the entry's status"},
    ("post", "/v1/entries/{entry_id}/revoke"): {409: "Not allowed in the entry's status"},
    ("post", "/v1/admin/catalog/reload"): {
        422: "The catalog is refused (every problem listed); the catalog in force stays"
    },
}
_METHODS = ("get", "put", "post", "delete", "patch")


def merge_check_docs(schema: OpenAPI) -> None:
    """Complete ``schema``, the served app's document: ``/v1/check`` (GET and POST), the
    parts Litestar cannot derive (module docstring), the API key and every problem."""
    docs: Any = Litestar(
        [check_get, check_post, catalog_answer, batch_item_error],
        openapi_config=OpenAPIConfig(title="docs", version="0"),
        logging_config=None,  # a throwaway app: the served one configures logging
    ).openapi_schema
    paths = schema.paths = {**(schema.paths or {}), "/v1/check": docs.paths["/v1/check"]}
    components = schema.components = schema.components or Components()
    components.schemas = components.schemas or {}
    for name, component in (docs.components.schemas or {}).items():
        components.schemas.setdefault(name, component)

    if "/v1/lists/entries" in paths and paths["/v1/lists/entries"].post is not None:
        paths["/v1/lists/entries"].post.request_body = _ENTRIES_BODY
    if "/v1/catalog" in paths and paths["/v1/catalog"].get is not None:
        responses = paths["/v1/catalog"].get.responses or {}
        responses["200"] = docs.paths["/v1/catalog"].get.responses["200"]
        paths["/v1/catalog"].get.responses = responses
    if "/v1/check/batch" in paths and paths["/v1/check/batch"].post is not None:
        _document_batch(paths["/v1/check/batch"].post.responses, docs)
    if "/readyz" in paths and paths["/readyz"].get is not None:
        responses = paths["/readyz"].get.responses or {}
        ready = responses.get("200")
        if isinstance(ready, OpenAPIResponse):
            responses["503"] = OpenAPIResponse(
                description="Not ready: the same body, with the reasons", content=ready.content
            )

    components.security_schemes = {
        **(components.security_schemes or {}),
        "bearer": SecurityScheme(type="http", scheme="bearer", description="The API key"),
        "apiKey": SecurityScheme(
            type="apiKey", name="X-API-Key", security_scheme_in="header", description="The API key"
        ),
    }
    for path, item in paths.items():
        for method in _METHODS:
            operation = getattr(item, method, None)
            if operation is not None:
                _document_problems(path, method, operation)


def _document_batch(responses: Any, docs: Any) -> None:
    check = docs.paths["/v1/check"].get.responses["200"].content["application/json"].schema
    error = docs.paths["/batch-item-error"].get.responses["200"].content["application/json"]
    responses["200"] = OpenAPIResponse(
        description="One result per code, in input order: its check, or its error",
        content={
            "application/json": OpenAPIMediaType(
                schema=Schema(
                    type=OpenAPIType.OBJECT,
                    required=["batch_id", "results"],
                    properties={
                        "batch_id": Schema(type=OpenAPIType.STRING),
                        "results": Schema(
                            type=OpenAPIType.ARRAY,
                            items=Schema(one_of=[check, error.schema]),
                        ),
                    },
                )
            )
        },
    )


def _document_problems(path: str, method: str, operation: Any) -> None:
    """Every problem the operation can answer, as ``application/problem+json``; Litestar's
    own ``400`` (a body this app never sends) goes."""
    problems: dict[int, str] = {}
    parameters = {p.param_in for p in operation.parameters or [] if hasattr(p, "param_in")}
    if path.startswith("/v1/"):
        problems.update(_AUTH)
        operation.security = [{"bearer": []}, {"apiKey": []}]
    if operation.request_body is not None:
        problems.update(_BODY)
    if parameters & {"query", "path"}:
        problems.update({k: v for k, v in _PARAMETERS.items() if k not in problems})
    if "path" in parameters:
        problems.update(_PATH)
    problems.update(_SPECIFIC.get((method, path), {}))
    responses = operation.responses = operation.responses or {}
    litestar_400 = responses.get("400")
    if litestar_400 is not None and PROBLEM_JSON not in (litestar_400.content or {}):
        del responses["400"]
    for status, description in sorted(problems.items()):
        existing = responses.get(str(status))
        if existing is not None and PROBLEM_JSON in (existing.content or {}):
            continue  # described by the handler itself
        responses[str(status)] = OpenAPIResponse(
            description=description,
            content={PROBLEM_JSON: OpenAPIMediaType(schema=_PROBLEM)},
            headers=_RETRY_AFTER if status in (429, 503) else None,
        )

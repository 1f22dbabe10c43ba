"""``create_app(settings)``: the Litestar application, wired to one worker's runtime.

Served by ``python -m gateway serve`` through granian with ``factory=True``,
so every worker process builds its own app, runtime and snapshot.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

from litestar import Litestar, Request, Response
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.types import ASGIApp, Receive, Scope, Send

import gateway
from gateway.api import admin_keys, console
from gateway.api.admin import reload_catalog
from gateway.api.bodies import body_too_large, field_error
from gateway.api.check import check_batch, check_handler, check_route
from gateway.api.docs import merge_check_docs
from gateway.api.feedback import get_check, post_feedback
from gateway.api.lists import (
    get_subject,
    open_objection,
    put_grade,
    repair,
    resolve_objection,
    revoke,
    upsert_entries,
)
from gateway.api.ops import get_catalog, healthz, metrics_text, readyz
from gateway.api.reports import loop_report
from gateway.logs import HEADER, RequestIds, use_json_logs
from gateway.privacy import install_log_redaction, redact_responses
from gateway.problems import PROBLEM_JSON, FieldError, Problem
from gateway.runtime import Runtime
from gateway.settings import Settings

log = logging.getLogger("gateway")


def _problem_response(problem: Problem) -> Response[bytes]:
    return Response(
        problem.encode(),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=problem.headers,
    )


def _on_problem(_: Request[Any, Any, Any], exc: Problem) -> Response[bytes]:
    return _problem_response(exc)


def _on_validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[bytes]:
    """Litestar's request validation (msgspec) → 422 naming each field and its rule."""
    errors = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        key, message = str(item.get("key") or ""), str(item.get("message", exc.detail))
        if key == "data":  # the body itself, or a field Litestar did not name
            if message == "'data'":
                errors.append(FieldError("body", "a JSON body is required", "required"))
                continue
            key = ""
        errors.append(field_error(key, message))
    if not errors:
        errors.append(FieldError("body", str(exc.detail)))
    return _problem_response(
        Problem(
            422,
            "invalid-request",
            "Invalid request",
            "; ".join(f"{e.field}: {e.message}" for e in errors),
            errors,
        )
    )


_HTTP_KINDS = {
    400: "bad-request",
    404: "not-found",
    405: "method-not-allowed",
    413: "body-too-large",
    415: "unsupported-media-type",
}


def _phrase(status: int) -> str | None:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return None


def _on_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    if status == 413:  # Litestar's request_max_body_size, as the check's own limit says it
        problem = body_too_large(request.route_handler.resolve_request_max_body_size() or 0)
    else:
        problem = Problem(
            status,
            _HTTP_KINDS.get(status, "error"),
            _phrase(status) or exc.__class__.__name__,
            str(exc.detail),
        )
    problem.headers.update(exc.headers or {})
    return _problem_response(problem)


def _on_error(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    request_id = request.scope.get("state", {}).get("request_id", "")
    log.exception("request failed", exc_info=exc, extra={"request_id": request_id})
    return _problem_response(Problem(500, "internal", "Internal error", "the request failed"))


class GatewayApp:
    """The Litestar app, with ``/v1/check`` answered before Litestar's router and
    middleware: it is the hot path, a raw ASGI handler already, and routing it through
    Litestar cost about a fifth of its event-loop time. Everything else (including the
    same handler's route, for paths Litestar normalises) goes to Litestar."""

    def __init__(self, app: Litestar, check: ASGIApp) -> None:
        self.app = app
        self._check = check
        self._ids = RequestIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        request_id = self._ids.take(scope["headers"])
        state = scope.setdefault("state", {})
        if scope["path"] == "/v1/check":
            state["request_id"] = request_id  # the header's bytes, as the handler sends them
            await self._check(scope, receive, send)
            return
        state["request_id"] = request_id.decode()  # text, for Litestar's handlers and logs

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (HEADER, request_id)]
            await send(message)

        await self.app(scope, receive, send_with_id)

    def __getattr__(self, name: str) -> Any:  # app.state, app.openapi_schema, ...
        return getattr(self.app, name)


def create_app(settings: Settings | None = None) -> GatewayApp:
    settings = settings or Settings.from_env()
    runtime = Runtime(settings)
    check = check_handler(runtime)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = Litestar(
        route_handlers=[
            check_route(check),
            check_batch,
            post_feedback,
            get_check,
            get_catalog,
            healthz,
            readyz,
            metrics_text,
            loop_report,
            upsert_entries,
            open_objection,
            resolve_objection,
            repair,
            revoke,
            put_grade,
            get_subject,
            reload_catalog,
            *admin_keys.ROUTES,
            *console.ROUTES,
        ],
        lifespan=[lifespan],
        exception_handlers={
            Problem: _on_problem,
            ValidationException: _on_validation,
            HTTPException: _on_http,
            Exception: _on_error,
        },
        openapi_config=OpenAPIConfig(
            title="逢办必查 check gateway",
            version=gateway.__version__,
            description="Which credit measures apply to an organisation for a matter, with their "
            "legal basis; records the 发起—响应—反馈 loop.",
            path="/schema",
            render_plugins=[JsonRenderPlugin()],
        ),
        middleware=[redact_responses],
        debug=False,
    )
    app.state.runtime = runtime
    merge_check_docs(app.openapi_schema)
    install_log_redaction()  # after merge_check_docs: the app it builds resets logging
    if settings.log_format == "json":
        use_json_logs()
    return GatewayApp(app, check)

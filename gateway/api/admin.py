"""``POST /v1/admin/catalog/reload`` (scope ``admin``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litestar import Request, Response, post

from gateway.api.auth import caller_of, key_guard
from gateway.api.lists import actor
from gateway.problems import FieldError, Problem
from measures_catalog import CatalogError

if TYPE_CHECKING:
    from gateway.runtime import Runtime


@post(
    "/v1/admin/catalog/reload",
    tags=["admin"],
    status_code=200,
    summary="Validate the catalog directory and put it in force on every worker",
    guards=[key_guard("admin")],
)
async def reload_catalog(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """The new catalog is validated first: if it is refused, the answer is 422 with every
    problem the loader found and the catalog in force stays. Otherwise this worker swaps
    at once and every other worker within about half a second."""
    rt: Runtime = request.app.state.runtime
    caller = caller_of(request)
    try:
        previous, catalog, generation = await rt.catalogs.reload_everywhere(actor(caller))
    except CatalogError as exc:
        raise Problem(
            422,
            "catalog-refused",
            "Catalog refused",
            f"{len(exc.problems)} problem(s); the catalog {rt.catalog.version} stays in force",
            [
                FieldError(f"{p.file}: {p.entry}" if p.entry else p.file, p.message)
                for p in exc.problems
            ],
        ) from None
    return Response(
        {"previous": previous.version, "version": catalog.version, "generation": generation}
    )

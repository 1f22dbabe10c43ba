"""``GET /v1/catalog``, ``/healthz`` and ``/readyz``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import msgspec
from litestar import Request, Response, get

from gateway import metrics
from gateway.api.auth import key_guard
from gateway.privacy import redact
from measures_catalog import Catalog

if TYPE_CHECKING:
    from gateway.runtime import Runtime


class CatalogMeasure(msgspec.Struct, frozen=True):
    code: str
    name: str
    kind: str
    strength: str
    basis: list[str]
    #: For each rule: the matters, list types, grades and whether a commitment triggers it.
    rules: list[dict[str, Any]]
    excludes: list[str]


class CatalogView(msgspec.Struct, frozen=True):
    version: str
    effective_on: str
    title: str
    list_types: list[dict[str, Any]]
    matter_types: list[dict[str, Any]]
    grades: list[dict[str, Any]]
    measures: list[CatalogMeasure]


def catalog_view(catalog: Catalog) -> bytes:
    measures = [
        CatalogMeasure(
            m.code,
            m.name,
            m.kind,
            m.strength,
            [b.text for b in m.basis],
            [
                {
                    "matters": list(r.matters),
                    "list_types": list(r.list_types),
                    "grades": list(r.grades),
                    "commitment": r.commitment,
                    "basis": [b.text for b in r.basis],
                }
                for r in m.rules
            ],
            sorted(m.excludes),
        )
        for m in catalog.measures.values()
    ]
    return msgspec.json.encode(
        CatalogView(
            catalog.version,
            catalog.effective_on.isoformat(),
            catalog.title,
            [
                {
                    "code": t.code,
                    "kind": t.kind,
                    "name": t.name,
                    "authority": t.authority,
                    "default_period_months": t.default_period_months,
                    "period_note": t.period_note,
                    "basis": [b.text for b in t.basis],
                }
                for t in catalog.list_types.values()
            ],
            [{"code": m.code, "name": m.name} for m in catalog.matter_types.values()],
            [{"code": g.code, "name": g.name, "rank": g.rank} for g in catalog.grades.values()],
            measures,
        )
    )


@get(
    "/v1/catalog",
    tags=["catalog"],
    summary="The measures catalog in force",
    guards=[key_guard()],
)
async def get_catalog(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Version, list types, matter types, grades and measures (any valid key)."""
    rt: Runtime = request.app.state.runtime
    return Response(rt.catalog_json, media_type="application/json")


@get("/healthz", tags=["operations"], summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", tags=["operations"], summary="Ready to answer checks")
async def readyz(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """200 when the catalog and a snapshot are loaded and the store accepts writes.

    Still 200 while degraded (Redis unavailable, changes read from the store instead):
    ``degraded`` says why and ``changes_from`` where list changes are read from now.

    Unauthenticated: a reason quoting an error of the store has citizen ID numbers masked."""
    rt: Runtime = request.app.state.runtime
    reasons = [redact(reason) for reason in rt.not_ready_reasons()]
    body = {
        "status": "ready" if not reasons else "not ready",
        "reasons": reasons,
        "degraded": [redact(reason) for reason in rt.degraded_reasons()],
        "changes_from": rt.changes_from(),
        "catalog_version": rt.service.catalog.version if rt.started else None,
        "snapshot_version": rt.snapshot.version,
        "snapshot_from": rt.snapshot.origin,
        "subjects": len(rt.snapshot),
        "entries": rt.snapshot.entry_count,
        "recorder_queue": rt.recorder.depth if rt.started else 0,
        "recorder_batches": rt.recorder.batches if rt.started else 0,
        "recorder_records": rt.recorder.records if rt.started else 0,
        "worker_pid": os.getpid(),
    }
    return Response(body, status_code=200 if not reasons else 503)


@get(
    "/metrics",
    tags=["operations"],
    summary="Prometheus text format: every worker's metrics (no key: labels hold no data)",
    media_type="text/plain",
)
async def metrics_text(request: Request[Any, Any, Any]) -> Response[bytes]:
    rt: Runtime = request.app.state.runtime
    if rt.started:
        rt.metrics.flush()  # this worker's latest; the others' are at most a second old
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)

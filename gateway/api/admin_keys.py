"""The admin API for keys and the audit log (scope ``admin``).

``/v1/admin/keys``: list, create (the key is in the answer once, never again),
revoke, rotate (the old key stays valid for an overlap window) and set a key's
expiry and rate limit. ``/v1/admin/audit``: the administrative changes, oldest
first, filtered. Every change is written with its audit line in one transaction
and reaches every worker within ``GATEWAY_KEYS_REFRESH`` (0.5 s).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from litestar import Request, Response, get, post, put
from litestar.params import FromPath, JSONBody, QueryParameter

from gateway.api.auth import caller_of, key_guard
from gateway.api.bodies import JSONBodyRequest
from gateway.api.lists import actor
from gateway.model import SCOPES, Caller, Scope
from gateway.problems import invalid, not_found
from gateway.store import KeyLimits, KeyNotFound

if TYPE_CHECKING:
    from gateway.runtime import Runtime

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Rate = Annotated[float, msgspec.Meta(gt=0, le=1_000_000)]
Burst = Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
KeyId = Annotated[str, msgspec.Meta(pattern="^[A-Za-z0-9]{8}$")]
MAX_BODY = 16 * 1024
#: The longest overlap a rotation allows: 30 days.
MAX_OVERLAP = 30 * 24 * 3600


class KeyLimitsRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    #: When the key stops working (ISO 8601 with offset); null: never.
    expires_at: datetime | None = None
    #: Requests a second; null: the gateway's default (``GATEWAY_RATE_LIMIT``).
    rate_per_second: Rate | None = None
    #: Requests allowed in a burst above the rate; null: one second's worth.
    burst: Burst | None = None


class CreateKeyRequest(KeyLimitsRequest, frozen=True, kw_only=True, forbid_unknown_fields=True):
    caller: Name
    department: Name
    scopes: Annotated[list[Scope], msgspec.Meta(min_length=1, max_length=len(SCOPES))]


class RotateKeyRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    #: Seconds the old key keeps working beside the new one (at most 30 days).
    overlap_seconds: Annotated[int, msgspec.Meta(ge=0, le=MAX_OVERLAP)] = 86_400


class NewKey(msgspec.Struct, frozen=True):
    """A key just made: ``key`` is shown here once and is never retrievable again."""

    key: str
    key_id: str
    caller_id: int
    caller: str
    department: str
    scopes: list[str]
    replaces: str | None = None
    old_key_expires_at: str | None = None


def _admin(request: Request[Any, Any, Any]) -> tuple[Runtime, Caller]:
    """The runtime and the admin that the route's guard let in."""
    rt: Runtime = request.app.state.runtime
    return rt, caller_of(request)


def _moment(field: str, moment: datetime | None) -> str | None:
    """``moment`` as the store writes times; it must carry its offset."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise invalid(field, "a date and time with its offset, e.g. 2027-01-01T00:00:00+08:00")
    return moment.astimezone().isoformat(timespec="milliseconds")


def _parse_moment(field: str, text: str | None) -> datetime | None:
    """An ISO 8601 date and time (with its offset, see :func:`_moment`), strictly."""
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise invalid(
            field, "an ISO 8601 date and time with its offset, e.g. 2026-11-22T08:00:00+08:00"
        ) from None


def _limits(data: KeyLimitsRequest) -> KeyLimits:
    _moment("expires_at", data.expires_at)
    if data.expires_at is not None and data.expires_at <= datetime.now().astimezone():
        raise invalid("expires_at", "must be in the future")
    return KeyLimits(data.expires_at, data.rate_per_second, data.burst)


def _new_key(caller: Caller, key: str, old: dict[str, Any] | None = None) -> NewKey:
    return NewKey(
        key=key,
        key_id=caller.key_id,
        caller_id=caller.caller_id,
        caller=caller.name,
        department=caller.department,
        scopes=sorted(caller.scopes),
        replaces=None if old is None else old["key_id"],
        old_key_expires_at=None if old is None else old["expires_at"],
    )


@get(
    "/v1/admin/keys",
    tags=["admin"],
    summary="Every key: caller, scopes, dates, limits",
    guards=[key_guard("admin")],
)
async def list_keys(request: Request[Any, Any, Any]) -> list[dict[str, Any]]:
    """Never a key nor its digest: ids, callers, scopes, creation, revocation, expiry,
    rate limit, and the key each one replaced."""
    rt, _ = _admin(request)
    return await rt.store.list_keys()


@post(
    "/v1/admin/keys",
    tags=["admin"],
    status_code=201,
    summary="Create a key",
    request_class=JSONBodyRequest,
    request_max_body_size=MAX_BODY,
    guards=[key_guard("admin")],
)
async def create_key(request: Request[Any, Any, Any], data: JSONBody[CreateKeyRequest]) -> NewKey:
    """The answer holds the key, once: store it now. The caller (system and department)
    is created on first use."""
    rt, admin = _admin(request)
    try:
        caller, key = await rt.store.create_key(
            data.caller, data.department, data.scopes, _limits(data), actor(admin)
        )
    except ValueError as exc:
        raise invalid("caller", str(exc)) from None
    return _new_key(caller, key)


@post(
    "/v1/admin/keys/{key_id:str}/revoke",
    tags=["admin"],
    status_code=200,
    summary="Revoke a key (every worker refuses it within 0.5 s)",
    guards=[key_guard("admin")],
)
async def revoke_key(request: Request[Any, Any, Any], key_id: FromPath[KeyId]) -> dict[str, Any]:
    rt, admin = _admin(request)
    if not await rt.store.revoke_key(key_id, actor(admin)):
        raise not_found(f"no key in force has the id {key_id}")
    listed = {k["key_id"]: k for k in await rt.store.list_keys()}
    return listed[key_id]


@post(
    "/v1/admin/keys/{key_id:str}/rotate",
    tags=["admin"],
    status_code=201,
    summary="A new key for the same caller; the old one works for an overlap window",
    request_class=JSONBodyRequest,
    request_max_body_size=MAX_BODY,
    guards=[key_guard("admin")],
)
async def rotate_key(
    request: Request[Any, Any, Any],
    key_id: FromPath[KeyId],
    data: JSONBody[RotateKeyRequest],
) -> NewKey:
    """The new key has the old one's caller, scopes and rate limit; the old key keeps
    working for ``overlap_seconds`` (default one day: send ``{}``) or until its own
    expiry if sooner, so the calling system can switch without a failed request."""
    rt, admin = _admin(request)
    overlap = timedelta(seconds=data.overlap_seconds)
    try:
        caller, key, old = await rt.store.rotate_key(key_id, overlap, actor(admin))
    except KeyNotFound as exc:
        raise not_found(str(exc)) from None
    return _new_key(caller, key, old)


@put(
    "/v1/admin/keys/{key_id:str}/limits",
    tags=["admin"],
    summary="Set a key's expiry and rate limit (null clears each)",
    request_class=JSONBodyRequest,
    request_max_body_size=MAX_BODY,
    guards=[key_guard("admin")],
)
async def set_key_limits(
    request: Request[Any, Any, Any], key_id: FromPath[KeyId], data: JSONBody[KeyLimitsRequest]
) -> dict[str, Any]:
    rt, admin = _admin(request)
    try:
        return await rt.store.set_key_limits(key_id, _limits(data), actor(admin))
    except KeyNotFound as exc:
        raise not_found(str(exc)) from None


@get(
    "/v1/admin/audit",
    tags=["admin"],
    summary="The audit log of administrative changes",
    guards=[key_guard("admin")],
)
async def audit_log(
    request: Request[Any, Any, Any],
    action: Annotated[str | None, QueryParameter(name="action", max_length=100)] = None,
    actor_name: Annotated[str | None, QueryParameter(name="actor", max_length=300)] = None,
    target: Annotated[str | None, QueryParameter(name="target", max_length=200)] = None,
    since: Annotated[str | None, QueryParameter(name="since", max_length=40)] = None,
    until: Annotated[str | None, QueryParameter(name="until", max_length=40)] = None,
    after_id: Annotated[int, QueryParameter(name="after_id", ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, QueryParameter(name="limit", ge=1, le=1000)] = 100,
) -> Response[dict[str, Any]]:
    """Oldest first: who (the calling system and key, or ``cli:<user>``), when, what
    (``key.create``, ``key.revoke``, ``key.rotate``, ``key.limits``, ``catalog.reload``,
    ``entry.objection_pending``, ``entry.active``, ``entry.revoked``, ``entry.repaired``,
    ``entries.upsert``, ``grades.put``), on what, and the state before and after. Page
    with ``after_id`` = the last ``id`` read. Each entry's own history is in
    ``GET /v1/subjects/{uscc}``."""
    rt, _ = _admin(request)
    lines = await rt.store.audit(
        action=action,
        actor=actor_name,
        target=target,
        since=_moment("since", _parse_moment("since", since)),
        until=_moment("until", _parse_moment("until", until)),
        after_id=after_id,
        limit=limit,
    )
    return Response({"lines": lines, "next_after_id": lines[-1]["id"] if lines else after_id})


ROUTES = [list_keys, create_key, revoke_key, rotate_key, set_key_limits, audit_log]

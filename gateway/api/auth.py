"""API keys: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``.

The store keeps a salted HMAC of each key (``gateway.store.keys``). Each worker
holds the keys not revoked, by their public id, and watches the store's ``keys``
generation every ``keys_refresh`` seconds (a one-row read): any change made
through the CLI or the admin API moves it, and the worker reloads, so a revoked
key fails on every worker within that interval (0.5 s by default). A key past
its expiry fails at once (checked at each request). Each key may have its own
rate limit (``gateway.ratelimit``); past it the answer is 429 with
``Retry-After``.

A key is verified once against its salted HMAC (found by its public id, compared in
constant time); the worker then remembers the SHA-256 of the key (never the key) until
the next reload, so later requests cost one SHA-256 and a dict probe (about 0.5 µs
instead of 2 µs). The probe is by the digest of what was presented: its timing says
nothing about any stored key.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard

from gateway.jobs import Periodic
from gateway.model import Caller
from gateway.problems import Problem, forbidden, unauthorized
from gateway.ratelimit import RateLimits
from gateway.store import KeyInForce, key_id_of, matches
from gateway.store.backend import AnyStore
from gateway.store.callers import KEYS_CONTROL

#: Keys remembered as verified between two reloads (one SHA-256 instead of an HMAC).
MAX_VERIFIED = 10_000


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The key from ``Authorization: Bearer`` or ``X-API-Key`` (ASGI raw headers)."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif name == b"x-api-key" and value.strip():
            return value.decode("latin-1").strip()
    return None


def rate_limited(key_id: str, wait: float) -> Problem:
    return Problem(
        429,
        "rate-limited",
        "Too many requests",
        f"the key {key_id} is over its rate limit; retry in {wait:.2f} s",
        headers={"retry-after": str(max(1, math.ceil(wait)))},
    )


class KeyRing:
    def __init__(
        self,
        store: AnyStore,
        refresh: float = 0.5,
        limits: RateLimits | None = None,
    ) -> None:
        self.store = store
        self.by_id: dict[str, KeyInForce] = {}
        self.generation = -1
        self.limits = limits or RateLimits(None, None, 1)
        #: SHA-256 of keys already verified → their record (emptied at every reload).
        self._verified: dict[bytes, KeyInForce] = {}
        self._refresh = Periodic("key-refresh", refresh, self.poll)

    async def load(self) -> None:
        """Read every key in force (the generation first: no change is missed)."""
        generation, _ = await self.store.control_generation(KEYS_CONTROL)
        self.by_id = await self.store.keys_in_force()
        self._verified = {}
        self.generation = generation
        self.limits.forget(set(self.by_id))

    async def poll(self) -> None:
        generation, _ = await self.store.control_generation(KEYS_CONTROL)
        if generation != self.generation:
            await self.load()

    def start(self) -> None:
        self._refresh.start()

    async def stop(self) -> None:
        await self._refresh.stop()

    def authenticate(self, headers: Iterable[tuple[bytes, bytes]], *scopes: str) -> Caller:
        """The caller of a request, which must hold one of ``scopes`` (none given: any
        valid key) and be within its rate limit (a token is taken)."""
        key = presented_key(headers)
        if key is None:
            raise unauthorized(
                "send the API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
            )
        fingerprint = hashlib.sha256(key.encode()).digest()
        found = self._verified.get(fingerprint)
        if found is None:
            found = self.by_id.get(key_id_of(key) or "")
            if found is None or not matches(key, found.salt, found.digest):
                raise unauthorized("the API key is unknown or revoked")
            if len(self._verified) < MAX_VERIFIED:
                self._verified[fingerprint] = found
        if found.expires_at is not None and time.time() >= found.expires_at:
            ended = datetime.fromtimestamp(found.expires_at).astimezone().isoformat()
            raise unauthorized(f"the API key {found.key_id} expired at {ended}")
        if scopes and not any(scope in found.caller.scopes for scope in scopes):
            raise forbidden(" or ".join(scopes))
        if found.rate_per_second or self.limits.default_rate:
            wait = self.limits.wait(
                found.key_id, found.rate_per_second, found.burst, time.monotonic()
            )
            if wait:
                raise rate_limited(found.key_id, wait)
        return found.caller


def key_guard(*scopes: str) -> Guard:
    """A route guard: a valid key holding one of ``scopes`` (none: any valid key), within
    its rate limit. Guards run before Litestar reads the body, so a caller without a valid
    key learns nothing about the body it sent (401/403, not 400/415/422). The caller is
    left in the request's state for the handler (:func:`caller_of`)."""

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        keys: KeyRing = connection.app.state.runtime.keys
        caller = keys.authenticate(connection.scope["headers"], *scopes)
        connection.scope.setdefault("state", {})["caller"] = caller

    return guard


def caller_of(request: Request[Any, Any, Any]) -> Caller:
    """The caller that the route's :func:`key_guard` let in."""
    caller: Caller = request.scope["state"]["caller"]
    return caller

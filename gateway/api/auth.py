"""API keys: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``.

The store keeps only SHA-256 hashes of keys; each worker holds the hashes of
the keys in force and reloads them every ``keys_refresh`` seconds, so a key
created or revoked on the command line takes effect without a restart.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.jobs import Periodic
from gateway.model import Caller
from gateway.problems import forbidden, unauthorized
from gateway.store import Store, hash_key


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


class KeyRing:
    def __init__(self, store: Store, refresh: float = 1.0) -> None:
        self.store = store
        self.refresh_interval = refresh
        self.by_hash: dict[str, Caller] = {}
        self._refresh = Periodic("key-refresh", refresh, self.load)

    async def load(self) -> None:
        self.by_hash = await self.store.keys_by_hash()

    def start(self) -> None:
        self._refresh.start()

    async def stop(self) -> None:
        await self._refresh.stop()

    def authenticate(self, headers: Iterable[tuple[bytes, bytes]], scope: str | None) -> Caller:
        """The caller of a request, which must hold ``scope`` (None: any valid key)."""
        key = presented_key(headers)
        if key is None:
            raise unauthorized(
                "send the API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
            )
        caller = self.by_hash.get(hash_key(key))
        if caller is None:
            raise unauthorized("the API key is unknown or revoked")
        if scope is not None and scope not in caller.scopes:
            raise forbidden(scope)
        return caller

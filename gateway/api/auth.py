"""API keys: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``.

The store keeps only SHA-256 hashes of keys; each worker holds the hashes of
the keys in force and reloads them every ``keys_refresh`` seconds, so a key
created or revoked on the command line takes effect without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from gateway.model import Caller
from gateway.problems import forbidden, unauthorized
from gateway.store import Store, hash_key

log = logging.getLogger(__name__)


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
        self._task: asyncio.Task[None] | None = None

    async def load(self) -> None:
        self.by_hash = await self.store.keys_by_hash()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="key-refresh")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_interval)
            try:
                await self.load()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep the keys we have
                log.warning("API keys not reloaded: %s", exc)

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

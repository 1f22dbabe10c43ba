"""Periodic work of a worker besides serving: catalog reloads and the expiry sweep.

* :class:`CatalogReloader`: ``reload_everywhere`` validates the catalog from its
  directory, swaps it in this worker in one step, and bumps the store's
  ``catalog`` generation; every worker watches that generation and reloads
  too. An invalid catalog is refused with the loader's problems and the one in
  force stays.
* :class:`ExpirySweep`: marks active entries past ``expires_on`` as expired in
  the store (with history and change log), so reports show it. The engine does
  not wait for it: an entry past its end date yields nothing anyway.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING

from gateway.background import BackgroundTask
from gateway.clock import CST
from measures_catalog import Catalog, CatalogError, load

if TYPE_CHECKING:
    from gateway.runtime import Runtime

log = logging.getLogger("gateway.jobs")
CATALOG_KEY = "catalog"


class Periodic(BackgroundTask):
    """Run ``step`` every ``interval`` seconds in a task; a failing step is logged, not fatal."""

    def __init__(self, name: str, interval: float, step: Callable[[], Awaitable[object]]) -> None:
        self.name = self.task_name = name
        self.interval = interval
        self.step = step

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s failed; next try in %.1f s", self.name, self.interval)


class CatalogReloader:
    def __init__(self, runtime: Runtime, interval: float) -> None:
        self.runtime = runtime
        self.seen = 0
        self.watch = Periodic("catalog-watch", interval, self._follow)

    async def start(self) -> None:
        self.seen, _ = await self.runtime.store.control_generation(CATALOG_KEY)
        self.watch.start()

    async def reload_here(self) -> tuple[Catalog, Catalog]:
        """Load and validate (off the event loop), then swap; (previous, new)."""
        directory = self.runtime.settings.catalog or None
        catalog = await asyncio.to_thread(load, directory)
        previous = self.runtime.catalog
        self.runtime.use_catalog(catalog)
        return previous, catalog

    async def reload_everywhere(self, actor: str) -> tuple[Catalog, Catalog, int]:
        """Reload here (raises CatalogError, nothing changed), then tell every worker."""
        previous, catalog = await self.reload_here()
        self.seen = await self.runtime.store.bump_control(
            CATALOG_KEY, catalog.version, actor, audit_action="catalog.reload"
        )
        log.info(
            "catalog %s → %s (generation %d, by %s)",
            previous.version,
            catalog.version,
            self.seen,
            actor,
        )
        return previous, catalog, self.seen

    async def _follow(self) -> None:
        generation, version = await self.runtime.store.control_generation(CATALOG_KEY)
        if generation == self.seen:
            return
        self.seen = generation
        try:
            previous, catalog = await self.reload_here()
        except CatalogError as exc:
            log.error(
                "catalog reload %d (%s) refused here, keeping %s: %s",
                generation,
                version,
                self.runtime.catalog.version,
                exc,
            )
            return
        log.info("catalog %s → %s (generation %d)", previous.version, catalog.version, generation)


class ExpirySweep:
    def __init__(self, runtime: Runtime, interval: float) -> None:
        self.runtime = runtime
        self.periodic = Periodic("expiry-sweep", interval, self.sweep)

    async def sweep(self) -> int:
        today = datetime.now(CST).date()
        expired = await self.runtime.store.mark_expired(today, "expiry sweep")
        if expired:
            log.info("%d entries past their end date marked expired", expired)
            self.runtime.lists_changed()
        return expired

"""Everything one worker holds while it serves: store, catalog, snapshot, recorder, keys."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime

from gateway import feed, metrics, scaleout
from gateway.api.auth import KeyRing
from gateway.clock import CST
from gateway.ids import uuid7_ms
from gateway.jobs import CatalogReloader, ExpirySweep, Periodic
from gateway.metrics import Metrics
from gateway.model import CheckRecord
from gateway.ratelimit import RateLimits
from gateway.recorder import Recorder
from gateway.service import CheckService
from gateway.settings import Settings, db_label
from gateway.snapshot import Snapshot
from gateway.store.backend import AnyStore, listener_for, open_store, recorder_for
from measures_catalog import Catalog, load

log = logging.getLogger("gateway")
#: Seconds between two flushes of a worker's tallies into the exported metrics.
METRICS_INTERVAL = 1.0
#: Every how many flushes the feedback backlog is read from the store.
BACKLOG_EVERY = 10
#: Seconds after its making within which a check missing from the store may still be held
#: by another worker (framed, not yet inserted), and how often it is looked for meanwhile.
HELD_AT_MOST = 1.0
HELD_POLL = 0.005
#: Seconds beyond ``store_delay_ms`` allowed to another worker's insert (its commit, a lock).
HELD_SLACK = 0.005


class Runtime:
    store: AnyStore
    keys: KeyRing
    recorder: Recorder
    service: CheckService
    follower: feed.ChangeFollower | scaleout.StreamFollower
    #: Redis links (None: embedded, no Redis).
    scale_out: scaleout.ScaleOut | None = None
    catalogs: CatalogReloader
    expiry: ExpirySweep
    metrics: Metrics
    publisher: Periodic

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.catalog: Catalog = load(settings.catalog or None)
        self.catalog_json = b""
        self.snapshot = Snapshot()
        self.started = False
        self._published = 0

    async def start(self) -> None:
        from gateway.api.ops import catalog_view

        settings = self.settings
        self.catalog_json = catalog_view(self.catalog)
        self.store = await open_store(settings.db)
        limits = RateLimits(
            settings.rate_limit or None, settings.rate_burst or None, settings.workers
        )
        self.keys = KeyRing(self.store, settings.keys_refresh, limits)
        self.metrics = Metrics()
        await self.keys.load()
        sources: list[feed.Source] = []
        sinks: list[tuple[str, feed.Sink]] = []
        path = settings.snapshot_path
        if settings.redis_url:
            self.scale_out = scaleout.ScaleOut(
                settings, self.store, self.snapshot, self._mark_degraded
            )
            sources.append(self.scale_out.snapshot_source)
            sinks.append(self.scale_out.snapshot_sink)
        lock = None
        if path is not None:
            sources.append(feed.file_source(path))
            sinks.append(feed.file_sink(path))
            lock = path.with_name(f"{path.name}.lock")  # one build at a time on a machine
        await feed.build(self.store, self.snapshot, sources, sinks, lock)
        self.recorder = recorder_for(
            settings, lambda records, seconds: self.metrics.tally.batch(records, seconds)
        )
        await self.recorder.start()
        self.service = CheckService(self.catalog, self.snapshot, self.recorder, self.metrics)
        if self.scale_out is not None:
            self.follower = self.scale_out.follower
            await self.scale_out.start()
        else:
            self.follower = feed.ChangeFollower(
                self.store, self.snapshot, settings.poll_interval, listener_for(settings.db)
            )
        self.follower.start()
        self.keys.start()
        self.catalogs = CatalogReloader(self, settings.poll_interval * 5)
        await self.catalogs.start()
        self.expiry = ExpirySweep(self, settings.expiry_interval)
        await self.expiry.sweep()
        self.expiry.periodic.start()
        self.publisher = Periodic("metrics", METRICS_INTERVAL, self.publish_metrics)
        await self.publish_metrics()
        self.publisher.start()
        self.started = True
        log.info(
            "gateway ready: catalog %s, snapshot %d (%d subjects), db %s",
            self.catalog.version,
            self.snapshot.version,
            len(self.snapshot),
            db_label(settings.db),
        )

    async def find_check(self, check_id: str) -> CheckRecord | None:
        """A recorded check by its id: framed by this worker and not yet inserted
        (``gateway.storebehind``), or in the store. With several workers, one another
        worker made in the last ``HELD_AT_MOST`` seconds and has not inserted yet is
        waited for (each inserts what it framed within ``store_delay_ms``)."""
        held = self.recorder.held_check(check_id)
        if held is not None:
            return held
        check = await self.store.get_check(check_id)
        made_ms = uuid7_ms(check_id)
        if check is not None or self.settings.workers < 2 or made_ms is None:
            return check
        if self.recorder.behind is None:  # inserted before it was answered
            return None
        while check is None and time.time() < made_ms / 1000 + HELD_AT_MOST:
            await asyncio.sleep(HELD_POLL)
            check = await self.store.get_check(check_id)
        return check

    async def checks_settled(self) -> None:
        """Return once the checks answered before the call are in the store, for reads that
        count or list them (reports, a subject's recent checks): this worker's are inserted
        now; another worker inserts what it framed within ``store_delay_ms``, waited for."""
        if self.recorder.behind is None:
            return
        await self.recorder.store_held()
        if self.settings.workers > 1:
            await asyncio.sleep(self.settings.store_delay_ms / 1000 + HELD_SLACK)

    def use_catalog(self, catalog: Catalog) -> None:
        """Put ``catalog`` in force for every check that starts from now on (one step)."""
        from gateway.api.ops import catalog_view

        catalog_json = catalog_view(catalog)
        self.catalog, self.catalog_json = catalog, catalog_json
        self.service.catalog = catalog

    async def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        await self.publisher.stop()
        await self.expiry.periodic.stop()
        await self.catalogs.watch.stop()
        await self.follower.stop()
        if self.scale_out is not None:
            await self.scale_out.stop()
        await self.snapshot.close()
        await self.keys.stop()
        await self.recorder.stop()
        self.metrics.flush()
        metrics.worker_stopped()
        await self.store.close()
        log.info("gateway stopped: recorder flushed")

    async def publish_metrics(self, backlog: bool = False) -> None:
        """This worker's tallies and state into the exported metrics (every second); the
        gauges of a worker that died (killed, not stopped) go. The feedback backlog is
        read from the store every ``BACKLOG_EVERY`` flushes (or when ``backlog``)."""
        metrics.forget_dead_workers()
        self._published += 1
        if backlog or self._published % BACKLOG_EVERY == 1:
            today = datetime.now(CST).date()
            pending, overdue = await self.store.feedback_backlog(
                today, self.settings.feedback_due_days
            )
            self.metrics.set_feedback_backlog(pending, overdue)
        lag = max(0, await self.store.last_change_seq() - self.snapshot.version)
        record_log = self.recorder.record_log
        self.metrics.set_state(
            queue_depth=self.recorder.depth,
            snapshot_version=self.snapshot.version,
            snapshot_entries=self.snapshot.entry_count,
            seconds_since_read=max(0.0, time.monotonic() - self.follower.last_ok),
            change_lag=lag,
            catalog_version=self.catalog.version,
            degraded=self.service.degraded,
            sync_by_thread=self.recorder.sync_by_thread,
            record_log_stalls=record_log.stalls if record_log else 0,
            record_log_fallbacks=record_log.store_syncs if record_log else 0,
        )
        self.metrics.flush()

    def not_ready_reasons(self) -> list[str]:
        if not self.started:
            return ["starting: catalog, snapshot or store not loaded yet"]
        reasons = []
        if not self.snapshot.loaded:
            reasons.append("snapshot not loaded")
        if self.recorder.last_error:
            reasons.append(f"store does not accept writes: {self.recorder.last_error}")
        if not self.follower.healthy:
            reasons.append(
                f"change log unreadable (serving snapshot {self.snapshot.version}): "
                f"{self.follower.last_error}"
            )
        return reasons

    def _mark_degraded(self, degraded: bool) -> None:
        if hasattr(self, "service"):
            self.service.degraded = degraded

    def lists_changed(self) -> None:
        """Lists were changed through this worker: publish to the stream now."""
        if self.scale_out is not None:
            self.scale_out.relay.nudge()

    def changes_from(self) -> str:
        """Where list changes reach this worker from now: the Redis stream or the store."""
        if self.scale_out is None or self.scale_out.follower.degraded:
            return "store"
        return "redis"

    def degraded_reasons(self) -> list[str]:
        """Why answers are marked ``degraded`` (the worker still answers: it is ready)."""
        follower = self.follower if self.started else None
        if isinstance(follower, scaleout.StreamFollower) and follower.degraded:
            return [follower.degraded_reason]
        return []

    def log_exception(self, message: str, request_id: str = "") -> None:
        log.exception(message, extra={"request_id": request_id})

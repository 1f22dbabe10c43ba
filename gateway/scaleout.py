"""Several nodes: list changes through Redis, and what a worker does when Redis fails.

With ``GATEWAY_REDIS_URL`` set, each worker runs two tasks instead of the
store poller of :class:`gateway.feed.ChangeFollower`:

- :class:`StreamFollower` reads the change stream from its snapshot's version
  (``XREAD BLOCK``) and applies each message. When Redis fails or answers too
  late it marks the worker **degraded** (answers carry ``degraded: true``,
  ``/readyz`` says why, ``gateway_degraded`` is 1), reads the store's change
  log instead every poll interval, and tries Redis again; when Redis answers,
  it reads on from its version and the worker is no longer degraded. No
  change is lost either way: the store's change log holds them all.
- :class:`Relay` publishes the store's change log to the stream
  (:meth:`gateway.stream.ChangeStream.publish_pending`). The worker holding
  the relay lease (``{prefix}:relay``, renewed each poll) polls the store for
  changes made anywhere (imports from the command line, the expiry sweep,
  another node); a worker that has just changed lists itself is *nudged* and
  publishes at once, whoever holds the lease. A stream without a head (Redis
  restarted empty) is re-seeded at the version of the worker's packed
  snapshot, which is uploaded as the shared snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Final

from gateway import feed, redis_client, redis_snapshot
from gateway.background import BackgroundTask
from gateway.redis_client import BLOCK_MS, REDIS_ERRORS
from gateway.settings import Settings
from gateway.snapshot import Snapshot
from gateway.store.backend import AnyStore
from gateway.stream import ChangeStream, Message

log = logging.getLogger(__name__)

#: How long the relay lease lasts without renewal, in poll intervals.
LEASE_INTERVALS: Final = 20
_RENEW: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""


class StreamFollower(BackgroundTask):
    """Keeps one snapshot current from the change stream, or from the store without it."""

    task_name = "stream-follower"

    def __init__(
        self,
        store: AnyStore,
        snapshot: Snapshot,
        stream: ChangeStream,
        interval: float,
        on_degraded: Callable[[bool], None] = lambda degraded: None,
        probe: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.store = store
        self.snapshot = snapshot
        self.stream = stream
        self.interval = interval
        #: A short command (PING) tried while degraded before blocking on the stream
        #: again: a hung Redis costs the timeout of a command, not of a blocking read.
        self.probe = probe or stream.client.ping
        self.on_degraded = on_degraded
        #: Redis cannot be read: changes come from the store's change log.
        self.degraded = False
        self.degraded_reason = ""
        #: The store cannot be read either (while degraded, or to fill a gap).
        self.healthy = True
        self.last_error = ""
        self.last_ok = time.monotonic()
        self.from_stream = 0

    async def catch_up(self) -> None:
        """Apply what the stream holds past the snapshot (at start, before serving);
        from the store when Redis cannot be read."""
        try:
            while messages := await self.stream.read(self.snapshot.version, None, count=200):
                await self._apply(messages)
        except REDIS_ERRORS as exc:
            self._degrade(exc)
            await self._from_store()

    async def _run(self) -> None:
        while True:
            try:
                if self.degraded:
                    await self.probe()
                messages = await self.stream.read(self.snapshot.version, BLOCK_MS)
            except REDIS_ERRORS as exc:
                self._degrade(exc)
                await self._from_store()
                await asyncio.sleep(self.interval)
                continue
            try:
                await self._apply(messages)
            except Exception as exc:  # a gap the store could not fill: try again
                self._unhealthy(exc)
                await asyncio.sleep(self.interval)
                continue
            if self.degraded:
                log.warning("Redis answers again: following the change stream")
                self.degraded, self.degraded_reason = False, ""
                self.on_degraded(False)
            self.healthy, self.last_error = True, ""
            self.last_ok = time.monotonic()

    async def _apply(self, messages: list[Message]) -> None:
        for message in messages:
            if message.seq <= self.snapshot.version:
                continue
            if message.prev > self.snapshot.version:
                # The stream lacks changes this worker has not seen (trimmed, or Redis
                # re-seeded): the store's change log has them.
                await feed.catch_up(self.store, self.snapshot)
                if message.seq <= self.snapshot.version:
                    continue
            await self.snapshot.apply(dict(message.delta), message.seq)
            self.from_stream += 1

    def _degrade(self, exc: BaseException) -> None:
        reason = f"Redis unavailable ({type(exc).__name__}: {exc}): following the store"
        if not self.degraded:
            log.warning("%s; serving snapshot %d", reason, self.snapshot.version)
            self.degraded = True
            self.on_degraded(True)
        self.degraded_reason = reason

    async def _from_store(self) -> None:
        try:
            await feed.catch_up(self.store, self.snapshot)
        except Exception as exc:  # keep serving the last snapshot; say why
            self._unhealthy(exc)
        else:
            self.healthy, self.last_error = True, ""
            self.last_ok = time.monotonic()

    def _unhealthy(self, exc: BaseException) -> None:
        self.healthy = False
        self.last_error = f"{type(exc).__name__}: {exc}"
        log.warning("change log unreadable, serving snapshot %d: %s", self.snapshot.version, exc)


class Relay(BackgroundTask):
    """Publishes the store's change log to the stream (see the module's description)."""

    task_name = "stream-relay"

    def __init__(
        self,
        store: AnyStore,
        snapshot: Snapshot,
        stream: ChangeStream,
        interval: float,
        share: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.snapshot = snapshot
        self.stream = stream
        self.interval = interval
        #: Called after a re-seed: puts this worker's packed snapshot in Redis.
        self.share = share
        self.last_error = ""
        self.published = 0
        self._token = uuid.uuid4().hex
        self._lease_key = stream.key.replace(":changes", ":relay")
        self._renew = stream.client.register_script(_RENEW)
        self._wake = asyncio.Event()

    def nudge(self) -> None:
        """Lists were just changed here: publish now rather than at the next poll."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            nudged = self._wake.is_set()
            self._wake.clear()
            try:
                if nudged or await self._hold_lease():
                    await self.publish()
                self.last_error = ""
            except REDIS_ERRORS as exc:
                if not self.last_error:
                    log.warning("change stream not published: %s", exc)
                self.last_error = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # the store could not be read: next poll
                if not self.last_error:
                    log.exception("change stream not published")
                self.last_error = f"{type(exc).__name__}: {exc}"

    async def _hold_lease(self) -> bool:
        ttl = int(self.interval * LEASE_INTERVALS * 1000)
        return bool(await self._renew(keys=[self._lease_key], args=[self._token, ttl]))

    async def publish(self) -> int:
        """Publish what the store holds past the stream's head (re-seeding it if it has
        none); return how many changes."""
        try:
            published = await self.stream.publish_pending(self.store)
        except LookupError:
            packed = self.snapshot.packed
            version = packed[1] if packed else await self.store.last_change_seq()
            head = await self.stream.seed(version)
            if head == version:
                log.warning("change stream re-seeded at %d", version)
                self.share()
            published = await self.stream.publish_pending(self.store)
        self.published += published
        return published


class ScaleOut:
    """A worker's Redis links: the shared snapshot, the stream follower and the relay."""

    def __init__(
        self,
        settings: Settings,
        store: AnyStore,
        snapshot: Snapshot,
        on_degraded: Callable[[bool], None],
    ) -> None:
        self.settings = settings
        prefix = settings.redis_prefix
        self._commands = redis_client.commands(settings)
        self._blocking = redis_client.blocking(settings)
        self._transfer = redis_client.transfer(settings)
        length = settings.redis_stream_length
        self.snapshot_source: feed.Source = (
            "redis",
            partial(redis_snapshot.download, self._transfer, prefix),
        )
        upload = partial(redis_snapshot.upload, self._transfer, prefix)
        self.snapshot_sink: tuple[str, feed.Sink] = ("redis", upload)
        saver = feed.SnapshotSaver(store, "redis", upload)

        def share() -> None:
            if snapshot.packed is not None:
                saver.save(*snapshot.packed)

        self.follower = StreamFollower(
            store,
            snapshot,
            ChangeStream(self._blocking, prefix, length),
            settings.poll_interval,
            on_degraded,
            self._commands.ping,
        )
        self.relay = Relay(
            store,
            snapshot,
            ChangeStream(self._commands, prefix, length),
            settings.poll_interval,
            share,
        )

    async def start(self) -> None:
        """Catch up from the stream (the snapshot was just built or read) and relay the
        store's changes to it; the runtime starts :attr:`follower` as it starts any."""
        await self.follower.catch_up()
        self.relay.start()

    async def stop(self) -> None:
        """Stop the relay and close the clients (after the runtime stopped the follower)."""
        await self.relay.stop()
        await self._commands.aclose()
        await self._blocking.aclose()
        await asyncio.to_thread(self._transfer.close)


async def publish_once(settings: Settings, store: AnyStore) -> str:
    """Publish the store's pending changes to the stream (after an import from the command
    line); say what happened. When Redis cannot be reached, the gateways' relay publishes
    them at its next poll."""
    client = redis_client.commands(settings)
    try:
        stream = ChangeStream(client, settings.redis_prefix, settings.redis_stream_length)
        published = await stream.publish_pending(store)
    except LookupError:
        return "change stream not seeded yet: the gateways publish the changes when they start"
    except REDIS_ERRORS as exc:
        return f"Redis unavailable ({exc}): the gateways' relay publishes the changes"
    finally:
        await client.aclose()
    return f"{published} changes published to the change stream"

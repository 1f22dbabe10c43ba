"""The change stream and the shared snapshot, against a real redis-server and a real store."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.exceptions

from gateway import feed, redis_client, redis_snapshot
from gateway.scaleout import StreamFollower
from gateway.settings import Settings
from gateway.snapshot import Snapshot
from gateway.store import Store
from gateway.stream import ChangeStream
from loadtest.datagen import make_uscc
from loadtest.redis_server import RedisCluster, RedisServer
from tests.fixtures import entry

_RANDOM = random.Random(5)
CODES = [make_uscc(_RANDOM, "320000") for _ in range(40)]


def settings(redis_server: RedisServer, **fields: Any) -> Settings:
    return Settings(redis_url=redis_server.url, **fields)


async def list_codes(store: Store, codes: list[str], tag: str) -> int:
    await store.upsert_entries(
        [
            entry(code, "court_defaulter", f"{tag}-{code}", listed_on=date(2026, 1, 5))
            for code in codes
        ],
        "test",
    )
    return await store.last_change_seq()


def answers(snapshot: Snapshot) -> dict[str, object]:
    return {code: snapshot.lookup(code) for code in CODES}


def test_publish_then_read_carries_every_change_in_order(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    async def scenario() -> None:
        client = redis_client.commands(settings(redis_server))
        async with await Store.open(tmp_path / "g.db") as store:
            stream = ChangeStream(client, "t", 1_000)
            with pytest.raises(LookupError):
                await stream.publish_pending(store)  # never seeded
            assert await stream.seed(0) == 0
            assert await stream.seed(5) == 0  # a head in force is kept
            first = await list_codes(store, CODES[:10], "a")
            assert await stream.publish_pending(store) == first
            assert await stream.publish_pending(store) == 0  # nothing new
            second = await list_codes(store, CODES[10:12], "b")
            await store.repair(
                (await store.subject_entries(CODES[0]))[0].entry_id,
                date(2026, 2, 1),
                "(2026)修1号",
                "test",
            )
            last = await store.last_change_seq()
            assert await stream.publish_pending(store) == last - first
            messages = await stream.read(0, None)
            assert [(m.prev, m.seq) for m in messages] == [(0, first), (first, last)]
            assert second < last
            # Read from the stream alone, a snapshot answers as one built from the store.
            followed = Snapshot()
            for message in messages:
                await followed.apply(dict(message.delta), message.seq)
            built = Snapshot()
            await feed.build(store, built)
            assert answers(followed) == answers(built)
            assert followed.lookup(CODES[0]) is None  # the repair went too
            assert await stream.read(last, None) == []
        await client.aclose()

    asyncio.run(scenario())


def test_an_append_from_a_stale_head_is_refused(tmp_path: Path, redis_server: RedisServer) -> None:
    async def scenario() -> None:
        client = redis_client.commands(settings(redis_server))
        stream = ChangeStream(client, "t", 1_000)
        await stream.seed(3)
        assert await stream.append(3, 7, b"\x90") is None
        assert await stream.append(3, 9, b"\x90") == 7  # another publisher got there first
        assert await stream.head() == 7
        await client.delete(stream.head_key)  # Redis lost its data
        assert await stream.append(7, 9, b"\x90") == 0
        await client.aclose()

    asyncio.run(scenario())


def test_a_follower_fills_a_gap_in_the_stream_from_the_store(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """The stream re-seeded past the follower's version (Redis restarted empty): what the
    stream lacks is read from the store, and nothing is missed."""

    async def scenario() -> None:
        client = redis_client.commands(settings(redis_server))
        async with await Store.open(tmp_path / "g.db") as store:
            snapshot = Snapshot()
            await feed.build(store, snapshot)
            missed = await list_codes(store, CODES[:5], "missed")
            stream = ChangeStream(client, "t", 1_000)
            await stream.seed(missed)  # the stream starts after changes the follower lacks
            await list_codes(store, CODES[5:8], "after")
            await stream.publish_pending(store)
            follower = StreamFollower(store, snapshot, stream, 0.05)
            await follower.catch_up()
            assert snapshot.version == await store.last_change_seq()
            built = Snapshot()
            await feed.build(store, built)
            assert answers(snapshot) == answers(built)
            assert snapshot.lookup(CODES[0]) is not None  # from the store
            assert follower.from_stream == 0  # the store had the message's changes too
            # Past the gap, changes come from the stream.
            last = await list_codes(store, CODES[8:9], "later")
            await stream.publish_pending(store)
            await follower.catch_up()
            assert (follower.from_stream, snapshot.version) == (1, last)
            assert snapshot.lookup(CODES[8]) is not None
        await client.aclose()

    asyncio.run(scenario())


def test_the_shared_snapshot_round_trips_through_chunks(
    tmp_path: Path, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_snapshot, "CHUNK_BYTES", 256)  # many chunks, parts straddling them

    async def scenario() -> None:
        async with await Store.open(tmp_path / "g.db") as store:
            version = await list_codes(store, CODES, "all")
            built = Snapshot()
            await feed.build(store, built)
            fingerprint = await store.change_at(version)
        client = redis_client.transfer(settings(redis_server))
        assert redis_snapshot.download(client, "t") is None
        base, packed_version, entries = built.packed or (None, 0, 0)
        assert base is not None
        assert redis_snapshot.upload(client, "t", base, packed_version, fingerprint, entries)
        assert not redis_snapshot.upload(client, "t", base, packed_version, fingerprint, entries)
        meta = client.hgetall(redis_snapshot.meta_key("t"))
        assert int(meta[b"chunks"]) > 10
        saved = redis_snapshot.download(client, "t")
        assert saved is not None
        assert (saved.version, saved.fingerprint, saved.entry_count) == (version, fingerprint, 40)
        loaded = Snapshot()
        loaded.use(saved.subjects, saved.version, saved.entry_count)
        assert answers(loaded) == answers(built)
        # A chunk gone (expired after a newer upload) is not read as a snapshot.
        client.delete(redis_snapshot.chunk_key("t", version, 3))
        assert redis_snapshot.download(client, "t") is None
        client.close()

    asyncio.run(scenario())


def test_a_hung_redis_fails_a_command_within_its_timeouts(redis_server: RedisServer) -> None:
    """redis-py's defaults would wait 5 s and retry 10 times: ours bound a command by the
    timeout times (1 + retries)."""

    async def scenario() -> float:
        client = redis_client.commands(
            settings(redis_server, redis_timeout_ms=100, redis_retries=1)
        )
        await client.ping()
        redis_server.pause()
        started = time.monotonic()
        try:
            with pytest.raises(redis.exceptions.TimeoutError):
                await client.get("anything")
            return time.monotonic() - started
        finally:
            redis_server.resume()
            await client.aclose()

    took = asyncio.run(scenario())
    assert 0.15 < took < 1.0, took


def test_on_a_redis_cluster_the_stream_works_and_the_chunks_spread_over_its_masters(
    tmp_path: Path, redis_cluster: RedisCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_snapshot, "CHUNK_BYTES", 256)
    cluster = Settings(redis_url=redis_cluster.url, redis_cluster=True)

    async def scenario() -> None:
        client = redis_client.commands(cluster)
        async with await Store.open(tmp_path / "g.db") as store:
            stream = ChangeStream(client, "c", 1_000)
            await stream.seed(0)
            last = await list_codes(store, CODES, "all")
            assert await stream.publish_pending(store) == last
            assert await stream.append(0, last + 1, b"\x90") == last  # compare-and-append
            followed = Snapshot()
            for message in await stream.read(0, None):
                await followed.apply(dict(message.delta), message.seq)
            built = Snapshot()
            await feed.build(store, built)
            assert answers(followed) == answers(built)
            fingerprint = await store.change_at(last)
        await client.aclose()
        transfer = redis_client.transfer(cluster)
        assert isinstance(transfer, redis.RedisCluster)
        base, version, entries = built.packed or (None, 0, 0)
        assert base is not None
        assert redis_snapshot.upload(transfer, "c", base, version, fingerprint, entries)
        chunks = int(transfer.hget(redis_snapshot.meta_key("c"), "chunks") or 0)
        keys = [redis_snapshot.chunk_key("c", version, i) for i in range(chunks)]
        slots = {transfer.keyslot(key) for key in keys}  # type: ignore[no-untyped-call]
        masters = {transfer.nodes_manager.get_node_from_slot(slot).name for slot in slots}
        assert len(masters) == 3, "chunks spread over every master"
        saved = redis_snapshot.download(transfer, "c")
        assert saved is not None
        loaded = Snapshot()
        loaded.use(saved.subjects, saved.version, saved.entry_count)
        assert answers(loaded) == answers(built)
        transfer.close()

    asyncio.run(scenario())

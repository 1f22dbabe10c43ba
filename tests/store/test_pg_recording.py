"""Recording on PostgreSQL: the recorder's pipelined batches (``gateway.pipeline``,
``gateway.store.pg.recording``) and the change listener (``gateway.store.pg.notify``),
against a real server. A caller is answered only once its record is committed; records
that arrive while a batch is in flight leave together; a server that goes away fails the
batches it carried (503, never a silent loss) and the writer reconnects when it is back;
a list change committed on any connection wakes a follower at once."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from gateway import feed
from gateway.recorder import Recorder
from gateway.recording import RecorderFull
from gateway.snapshot import Snapshot
from gateway.store.pg import PgStore
from gateway.store.pg.notify import ChangeListener
from gateway.store.pg.recording import PgBatchWriter
from loadtest.pg_server import PostgresServer
from tests.store.helpers import TODAY, batch_checks_commit_whole, check, entry, feedback


def pipelined(url: str) -> Recorder:
    return Recorder(None, batch_writer_factory=lambda: PgBatchWriter.open(url))


async def caller_id(store: PgStore) -> int:
    caller, _ = await store.create_key("采购平台", "财政厅", ["check", "feedback"])
    return caller.caller_id


async def stored(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        return {r[0] for r in await conn.fetch("SELECT check_id FROM checks")}
    finally:
        await conn.close()


def test_a_record_is_answered_only_once_committed_and_batches_group(postgres_url: str) -> None:
    async def scenario() -> None:
        async with await PgStore.open(postgres_url) as store:
            caller = await caller_id(store)
            recorder = pipelined(postgres_url)
            await recorder.start()
            first = check(1, caller)
            assert await recorder.submit(first) is True
            # answered: another session reads it at once
            assert first.check_id in await stored(postgres_url)
            futures = [recorder.submit(check(n, caller)) for n in range(2, 402)]
            futures.append(recorder.submit_many([check(n, caller) for n in range(402, 502)]))
            assert recorder.depth == 500
            assert all(await asyncio.gather(*futures))
            # 500 records submitted in one turn: a few batches of up to max_batch, not 500
            assert recorder.batches <= 3
            done = recorder.submit(feedback(first.check_id, caller))
            again = recorder.submit(feedback(first.check_id, caller))
            assert (await done, await again) == (True, False)
            late = recorder.submit(check(502, caller))
            await recorder.stop()  # flushes what is in flight or waiting
            assert late.done()
            assert late.result() is True
            with pytest.raises(RecorderFull):
                recorder.submit(check(503, caller))
            assert len(await stored(postgres_url)) == 502
            assert await store.get_feedback(first.check_id) is not None

    asyncio.run(scenario())


def test_a_batch_checks_records_commit_together_however_small_the_batches(
    postgres_url: str,
) -> None:
    """Batches of 10: a batch check of 25 goes in one of them, so a duplicate among its
    records refuses all 25 and leaves none in the table (not the first 10 committed)."""

    async def scenario() -> None:
        async with await PgStore.open(postgres_url) as store:
            caller = await caller_id(store)
            recorder = Recorder(
                None, batch_writer_factory=lambda: PgBatchWriter.open(postgres_url), max_batch=10
            )
            await recorder.start()
            expected = await batch_checks_commit_whole(recorder, caller)
            assert await stored(postgres_url) == expected

    asyncio.run(scenario())


def test_a_refused_batch_fails_only_its_callers(postgres_url: str) -> None:
    async def scenario() -> None:
        async with await PgStore.open(postgres_url) as store:
            caller = await caller_id(store)
            recorder = pipelined(postgres_url)
            await recorder.start()
            assert await recorder.submit(check(1, caller))
            duplicate = recorder.submit(check(1, caller))  # same check id: refused
            with pytest.raises(RecorderFull):
                await duplicate
            assert "UniqueViolation" in recorder.last_error
            assert await recorder.submit(check(2, caller)) is True
            assert recorder.last_error == ""
            await recorder.stop()
            assert len(await stored(postgres_url)) == 2

    asyncio.run(scenario())


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    """A server of this test's own, which it may kill and start again: durable (not
    ``fast``, whose asynchronous commits a killed server may lose)."""
    directory = Path(tempfile.mkdtemp(prefix="gateway-pg-own-"))
    server = PostgresServer(directory)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def test_a_server_gone_fails_the_batch_and_the_writer_reconnects(
    own_server: PostgresServer,
) -> None:
    url = own_server.create_database("recording")

    async def scenario() -> None:
        async with await PgStore.open(url) as store:
            caller = await caller_id(store)
        recorder = pipelined(url)
        await recorder.start()
        assert await recorder.submit(check(1, caller))
        own_server.kill()
        lost = recorder.submit(check(2, caller))
        with pytest.raises(RecorderFull):
            await lost
        assert recorder.last_error
        own_server.start()
        assert await recorder.submit(check(3, caller)) is True
        await recorder.stop()
        assert await stored(url) == {check(1, caller).check_id, check(3, caller).check_id}

    asyncio.run(scenario())


def test_a_committed_change_wakes_the_listener_and_the_follower(postgres_url: str) -> None:
    async def scenario() -> None:
        async with await PgStore.open(postgres_url) as store:
            woken = asyncio.Event()
            listener = ChangeListener(postgres_url, woken.set)
            assert await listener.ensure()
            woken.clear()  # ensure wakes once for what was missed before listening
            await store.upsert_entries([entry(1)], actor="test")
            await asyncio.wait_for(woken.wait(), 2)
            await listener.close()

            snapshot = Snapshot()
            await feed.build(store, snapshot, [], [])
            # polls every 30 s: only the notification can bring the change in time
            follower = feed.ChangeFollower(
                store, snapshot, 30.0, lambda wake: ChangeListener(postgres_url, wake)
            )
            follower.start()
            await asyncio.sleep(0.3)  # listening
            before = snapshot.version
            started = time.monotonic()
            await store.upsert_entries([entry(2)], actor="test")
            while snapshot.version == before:
                assert time.monotonic() - started < 2, "the follower was not woken"
                await asyncio.sleep(0.01)
            assert snapshot.version == await store.last_change_seq()
            await follower.stop()
            await snapshot.close()

    asyncio.run(scenario())


def test_a_listener_reconnects_after_the_server_restarts(own_server: PostgresServer) -> None:
    url = own_server.create_database("listening")

    async def scenario() -> None:
        async with await PgStore.open(url):
            pass  # migrated: the trigger exists
        woken = asyncio.Event()
        listener = ChangeListener(url, woken.set, retry=0.1)
        assert await listener.ensure()
        own_server.kill()
        own_server.start()
        await asyncio.sleep(0.2)
        assert not listener.listening
        deadline = time.monotonic() + 5
        while not await listener.ensure():
            assert time.monotonic() < deadline, listener.last_error
            await asyncio.sleep(0.1)
        woken.clear()
        async with await PgStore.open(url) as store:
            await store.upsert_entries([entry(3, listed_on=TODAY)], actor="test")
        await asyncio.wait_for(woken.wait(), 2)
        await listener.close()

    asyncio.run(scenario())

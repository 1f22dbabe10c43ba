"""The paced checkpoint (gateway/store/checkpoint.py): everything copied, the log never
restarted while the copy may not be on disk yet, and the write-back paced only when it
writes."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gateway.store import CheckWriter, Maintenance, Store
from gateway.store import checkpoint as wal_checkpoint
from tests.store.helpers import check
from tests.store.test_checks import make_caller

pytestmark = pytest.mark.skipif(not wal_checkpoint.paced(), reason="sync_file_range: Linux")


def restarts(db: Path) -> int:
    """The log's checkpoint sequence number (its header's bytes 12-15): SQLite adds one
    each time it restarts the log, writing over it from the start."""
    return int.from_bytes(Path(f"{db}-wal").read_bytes()[12:16], "big")


def test_a_paced_checkpoint_copies_every_frame_and_the_rows_read_back(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    caller = make_caller(db)
    with CheckWriter(db) as writer:
        writer.write([check(n, caller.caller_id) for n in range(1, 300)])
        maintenance = Maintenance(db)
        frames, copied = maintenance.checkpoint()
        assert frames > 0
        assert copied == frames
        maintenance.close()
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT count(*) FROM checks").fetchone() == (299,)
    finally:
        conn.close()


def test_while_pinned_the_log_is_appended_to_not_restarted(tmp_path: Path) -> None:
    """What the checkpoint relies on: a read transaction begun while the log holds frames
    not yet copied keeps the next commit, after the copy, from writing over the log's first
    frames (which may be all that holds a page whose copy has not reached the disk yet);
    without it the log restarts. A read transaction begun when everything is copied reads
    the database file alone: it does not block the restart, it blocks the copy."""
    db = tmp_path / "g.db"
    caller = make_caller(db)
    with CheckWriter(db) as writer:
        writer.write([check(n, caller.caller_id) for n in range(1, 200)])
        copier = wal_checkpoint.connect(db)
        pin = sqlite3.connect(db, isolation_level=None)
        before = restarts(db)

        pin.execute("BEGIN")
        pin.execute("SELECT count(*) FROM sqlite_master").fetchone()
        frames, copied = copier.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1:]
        assert copied == frames > 0
        writer.write([check(200, caller.caller_id)])
        assert restarts(db) == before, "pinned: the commit went after the copied frames"
        pin.execute("COMMIT")

        copier.execute("PRAGMA wal_checkpoint(PASSIVE)")
        writer.write([check(201, caller.caller_id)])
        assert restarts(db) == before + 1, "unpinned: the next commit restarted the log"

        # Everything copied, then pinned: the pin reads the file alone and blocks the copy.
        copier.execute("PRAGMA wal_checkpoint(PASSIVE)")
        pin.execute("BEGIN")
        pin.execute("SELECT count(*) FROM sqlite_master").fetchone()
        writer.write([check(n, caller.caller_id) for n in range(202, 260)])
        frames, copied = copier.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1:]
        assert frames > 0
        assert copied == 0
        pin.execute("COMMIT")
        copier.close()
        pin.close()


def test_the_write_back_pauses_only_after_steps_that_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pauses: list[float] = []
    monkeypatch.setattr(wal_checkpoint.time, "sleep", pauses.append)
    path = tmp_path / "file"
    with path.open("wb") as out:
        out.write(os.urandom(8 * 1024 * 1024))  # dirty, in the page cache
    wal_checkpoint.write_back(path, step=1024 * 1024)
    assert pauses, "dirty steps were written and paced"
    assert all(0 < pause <= wal_checkpoint.MAX_PAUSE for pause in pauses)
    pauses.clear()
    wal_checkpoint.write_back(path, step=1024 * 1024)  # clean now: nothing to pace
    assert pauses == []


def test_the_log_in_use_is_its_frames_since_the_last_restart(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    caller = make_caller(db)
    with CheckWriter(db) as writer:
        writer.write([check(n, caller.caller_id) for n in range(1, 300)])
        conn = sqlite3.connect(db, isolation_level=None)
        frames = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        assert wal_checkpoint.log_in_use(db) == frames * (page + 24) > 0
        size = os.stat(f"{db}-wal").st_size
        assert wal_checkpoint.restart(wal_checkpoint.connect_restarter(db))
        writer.write([check(300, caller.caller_id)])
        # written over from the start: a few frames in use, the file as large as it was
        assert 0 < wal_checkpoint.log_in_use(db) < 10 * (page + 24)
        assert os.stat(f"{db}-wal").st_size == size
        conn.close()


def test_under_continuous_commits_the_checkpoint_restarts_the_log(tmp_path: Path) -> None:
    """A commit every millisecond or so, as under load: a passive checkpoint never copies
    the last frame before the next commit, so SQLite never restarts the log by itself and
    it grows by everything written; the upkeep's checkpoint restarts it, and the log stays
    within its limit and what is written between two checkpoints: a tick of the upkeep's
    steps (about a thousand checks indexed and rolled up) and a tenth of a second of these
    commits, some 2.5 MB each here, against the tens of MB it would grow to otherwise."""
    db = tmp_path / "g.db"
    caller = make_caller(db)
    stop = threading.Event()
    written = [0]

    def commit_continuously() -> None:
        with CheckWriter(db, synchronous="NORMAL") as writer:
            n = 1_000
            while not stop.is_set():
                writer.write([check(n + i, caller.caller_id) for i in range(10)])
                written[0] += 10
                n += 10
                time.sleep(0.0005)

    thread = threading.Thread(target=commit_continuously)
    thread.start()
    maintenance = Maintenance(db)
    limit = 1024 * 1024
    largest = 0
    try:
        # At least 3 s of it, and on until enough was written to outgrow the limit many
        # times (on a slow machine, longer), within 30 s.
        enough = 8 * limit // 200
        started = time.monotonic()
        while time.monotonic() - started < 3 or (
            written[0] < enough and time.monotonic() - started < 30
        ):
            time.sleep(0.1)
            maintenance.run_once(busy=True, wal_limit=limit)
            largest = max(largest, os.stat(f"{db}-wal").st_size)
        restarted = restarts(db)  # while the writer still holds the log open
    finally:
        stop.set()
        thread.join()
        maintenance.close()
    assert written[0] * 200 > 8 * limit, "enough was written to outgrow the limit many times"
    assert restarted > 1
    assert largest < 8 * limit


def test_the_stores_own_commits_leave_a_log_under_its_limit_to_the_paced_checkpoint(
    tmp_path: Path,
) -> None:
    """A list change, a key or a feed's page committed while checks are recorded: its commit
    does not run SQLite's own checkpoint of the log, as it did past 1,000 pages (an
    unpaced copy and fsync that held up the recorder's); the upkeep's paced one does it."""
    db = tmp_path / "g.db"
    caller = make_caller(db)

    async def scenario() -> None:
        with CheckWriter(db) as writer:
            maintenance = Maintenance(db)
            maintenance.checkpoint()
            maintenance.close()
            size = db.stat().st_size
            writer.write([check(n, caller.caller_id) for n in range(1, 20_001)])
            assert wal_checkpoint.log_in_use(db) > 1_000 * 4096  # past SQLite's default
            async with await Store.open(db) as store:
                await store.bump_control("probe", "1", "test")
            assert db.stat().st_size == size  # nothing checkpointed

    asyncio.run(scenario())


_SHM_DEAD_MAN_SWITCH = 128  # the -shm byte every connection holds a shared lock on (wal.c)


def _taken_elsewhere(path: Path, offset: int) -> bool:
    """Whether another process is refused an exclusive POSIX lock on ``path``'s byte."""
    probe = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "try:\n"
        "    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, int(sys.argv[2]))\n"
        "except OSError:\n"
        "    sys.exit(1)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, str(path), str(offset)], timeout=30)
    return done.returncode == 1


def test_reading_and_syncing_the_files_keeps_the_connections_locks(tmp_path: Path) -> None:
    """Closing any descriptor of a file drops the process's POSIX locks on it, SQLite's
    included: another process would then think itself alone and reset the shared index
    (the "database disk image is malformed" of two workers). What the upkeep and the
    record log's store syncer read and sync in a worker must leave the locks held."""
    db = tmp_path / "g.db"
    caller = make_caller(db)
    with CheckWriter(db, synchronous="NORMAL") as writer:
        writer.write([check(n, caller.caller_id) for n in range(1, 50)])
        shm = Path(f"{db}-shm")
        assert _taken_elsewhere(shm, _SHM_DEAD_MAN_SWITCH)  # the writer's connection holds it
        assert wal_checkpoint.log_in_use(db) > 0
        wal_checkpoint.write_back(db)
        writer.sync_wal()
        assert _taken_elsewhere(shm, _SHM_DEAD_MAN_SWITCH)

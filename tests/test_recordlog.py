"""The record log: what a worker acknowledged is in its slot until the store is synced,
no frame is written over before that, and a crashed worker's slot is recovered by the
next worker to open the directory.

Crashes are real: a child process writes and ends with ``os._exit`` (see
``tests.recordlog_child``)."""

from __future__ import annotations

import doctest
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import msgspec

from gateway import recordframes
from gateway.model import CheckRecord, FeedbackRecord
from gateway.recordframes import BLOCK, recover
from gateway.recordlog import RecordLog
from tests.store.helpers import check


def test_doctests() -> None:
    assert doctest.testmod(recordframes).failed == 0


class Store:
    """What the log does to the store: fsyncs (those of the loop's thread counted apart),
    and records given back. While ``slow`` is set, the store syncer's fsyncs do not
    return (a disk far behind); the loop's own do."""

    def __init__(self) -> None:
        self.loop_syncs = 0
        self.restored: list[str] = []
        self.slow = threading.Event()
        self._disk_caught_up = threading.Event()

    def sync(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self.loop_syncs += 1
        elif self.slow.is_set():
            self._disk_caught_up.wait()

    def catch_up(self) -> None:
        self.slow.clear()
        self._disk_caught_up.set()

    def restore(self, checks: list[CheckRecord], feedback: list[FeedbackRecord]) -> None:
        self.restored.extend(c.check_id for c in checks)
        self.restored.extend(f"feedback:{f.check_id}" for f in feedback)


STORE_ID = "0123456789abcdef0123456789abcdef"


def open_log(
    directory: Path, store: Store, ring_bytes: int = 1 << 20, store_id: str = STORE_ID
) -> RecordLog:
    return RecordLog.open(
        directory,
        store=store_id,
        ring_bytes=ring_bytes,
        sync_store=store.sync,
        restore=store.restore,
    )


def slow_store() -> Store:
    store = Store()
    store.slow.set()
    return store


def crash_after_writing(
    directory: Path, frames: list[list[CheckRecord]], store_id: str = STORE_ID
) -> Path:
    """Run a worker that writes ``frames`` and is gone without closing; its slot."""
    records = directory.parent / f"{directory.name}-frames.msgpack"
    records.write_bytes(msgspec.msgpack.encode(frames))
    child = ["-m", "tests.recordlog_child", str(directory), store_id, str(records)]
    done = subprocess.run(
        [sys.executable, *child],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return Path(done.stdout.strip())


def frames_of(n: int, per_frame: int) -> list[list[CheckRecord]]:
    return [[check(f * per_frame + i + 1, 1) for i in range(per_frame)] for f in range(n)]


def ids(frames: list[list[CheckRecord]]) -> list[str]:
    return [c.check_id for frame in frames for c in frame]


def recovered_from_a_copy(log: RecordLog, tmp_path: Path) -> list[str]:
    """What a crash now would leave to recover (the file copied while the worker runs)."""
    copy = tmp_path / "left-by-a-crash.log"
    shutil.copyfile(log.path, copy)
    found = Store()
    recover(copy, found.restore)
    return found.restored


def test_a_crashed_workers_records_are_recovered_once_by_the_next(tmp_path: Path) -> None:
    directory = tmp_path / "g.db.records"
    frames = frames_of(5, 3)
    slot = crash_after_writing(directory, frames)
    assert slot == directory / "slot-0.log"
    assert slot.stat().st_mode & 0o777 == 0o600  # checks as recorded: the owner's alone

    store = Store()
    log = open_log(directory, store)
    assert log.path == slot  # the slot was free again: taken, after its recovery
    assert store.restored == ids(frames)
    log.close()

    again = Store()
    open_log(directory, again).close()
    assert again.restored == []  # recovered once: a marker covers it now


def test_the_records_of_another_store_are_moved_aside_not_recovered(tmp_path: Path) -> None:
    directory = tmp_path / "g.db.records"
    crash_after_writing(directory, frames_of(2, 1), store_id="a" * 32)  # the old database's
    store = Store()
    log = open_log(directory, store, store_id="b" * 32)  # a database made anew at the path
    assert store.restored == []
    assert log.path == directory / "slot-0.log"
    log.close()
    aside = tmp_path / f"g.db.records.{'a' * 32}"
    assert (aside / "slot-0.log").exists()  # kept, for whoever wants it
    found = Store()
    recover(aside / "slot-0.log", found.restore)
    assert found.restored == ids(frames_of(2, 1))


def test_records_and_feedback_written_are_what_a_crash_leaves(tmp_path: Path) -> None:
    store = slow_store()
    log = open_log(tmp_path / "records", store)
    first, second = check(1, 1), check(2, 1)
    log.write([first], [])
    log.write([second], [FeedbackRecord(check_id=first.check_id, caller_id=1, measures=())])
    assert recovered_from_a_copy(log, tmp_path) == [
        first.check_id,
        second.check_id,
        f"feedback:{first.check_id}",
    ]
    store.catch_up()
    log.close()


def test_frames_the_store_syncer_covered_are_not_recovered(tmp_path: Path) -> None:
    store = Store()
    log = open_log(tmp_path / "records", store)
    log.write([check(1, 1)], [])
    for _ in range(500):  # the syncer's fsync follows the first write at once
        if log.covered >= 2:
            break
        threading.Event().wait(0.01)
    later = check(2, 1)
    log.write([later], [])  # its frame says the first is covered
    assert recovered_from_a_copy(log, tmp_path) == [later.check_id]
    log.close()


def test_a_clean_close_leaves_nothing_to_recover_even_when_all_was_covered(
    tmp_path: Path,
) -> None:
    """The store syncer covered every frame before the close: a marker must still say so
    on disk, or the next start would give the store the last frames again."""
    store = Store()
    log = open_log(tmp_path / "records", store)
    log.write([check(1, 1)], [])
    for _ in range(500):
        if log.covered >= 2:
            break
        threading.Event().wait(0.01)
    assert log.covered >= 2
    path = log.path
    log.close()
    assert recover(path, Store().restore)[0] == 0


def test_no_frame_is_written_over_before_the_store_is_synced(tmp_path: Path) -> None:
    store = slow_store()  # the store syncer gets nowhere: the ring fills
    log = open_log(tmp_path / "records", store, ring_bytes=8 * BLOCK)  # 8 one-block frames
    written = frames_of(20, 1)
    loop_syncs_after = []
    for frame in written:
        log.write(frame, [])
        loop_syncs_after.append(store.loop_syncs)
    # The marker's block is written over first (it covers itself); the 9th frame would
    # write over the 1st, not yet covered: the loop fsyncs the store first, and again at
    # the 17th.
    assert [n + 1 for n in range(1, 20) if loop_syncs_after[n] > loop_syncs_after[n - 1]] == [
        9,
        17,
    ]
    assert log.stalls == 2
    # Only what followed the last fsync: the frames before it, some still in the file,
    # are durable in the store.
    assert recovered_from_a_copy(log, tmp_path) == ids(written[16:])
    store.catch_up()
    log.close()


def test_a_torn_frame_is_skipped_and_the_others_recovered(tmp_path: Path) -> None:
    store = slow_store()
    log = open_log(tmp_path / "records", store)
    written = frames_of(5, 1)
    for frame in written:
        log.write(frame, [])
    data = bytearray(log.path.read_bytes())
    data[3 * BLOCK + 100] ^= 0xFF  # a byte of the third record frame (after the marker)
    torn = tmp_path / "torn.log"
    torn.write_bytes(bytes(data))
    found = Store()
    recover(torn, found.restore)
    assert found.restored == ids(written[:2] + written[3:])
    store.catch_up()
    log.close()


def test_each_worker_takes_its_own_slot_and_free_slots_are_recovered(tmp_path: Path) -> None:
    directory = tmp_path / "records"
    first, second = open_log(directory, Store()), open_log(directory, Store())
    assert (first.path.name, second.path.name) == ("slot-0.log", "slot-1.log")
    frames = frames_of(2, 2)
    crashed = crash_after_writing(directory, frames)  # 0 and 1 held: it took slot-2
    assert crashed.name == "slot-2.log"
    first.close()
    second.close()

    store = Store()
    third = open_log(directory, store)
    assert third.path.name == "slot-0.log"
    assert store.restored == ids(frames)  # slot-2, free, recovered on the way
    third.close()
    nothing = Store()
    open_log(directory, nothing).close()
    assert nothing.restored == []


def test_records_too_many_for_the_ring_are_made_durable_by_the_store(tmp_path: Path) -> None:
    store = Store()
    log = open_log(tmp_path / "records", store, ring_bytes=2 * BLOCK)
    log.write([check(n, 1) for n in range(1, 40)], [])  # more than two blocks of records
    assert (log.frames, log.store_syncs, store.loop_syncs) == (0, 1, 1)
    log.close()


def test_a_write_that_fails_makes_the_records_durable_by_the_store(tmp_path: Path) -> None:
    store = Store()
    log = open_log(tmp_path / "records", store)
    full = os.open("/dev/full", os.O_WRONLY)
    try:
        os.dup2(full, log._fd)  # the disk is full from now on: every write fails (ENOSPC)
    finally:
        os.close(full)
    log.write([check(1, 1)], [])
    assert (log.frames, log.store_syncs, store.loop_syncs) == (0, 1, 1)
    log.close()

"""The worker's sync process: a real child process fsyncs the log for the recorder; no
record is acknowledged before an fsync that began after its commit; one fsync serves
several commits; a failed fsync fails what it was to cover; a process that dies or
cannot start hands its work to the syncer thread; none outlives its recorder."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway import logsync
from gateway.model import CheckRecord, FeedbackRecord
from gateway.recorder import Recorder
from gateway.recording import RecorderFull
from gateway.store import CheckWriter
from tests.store.helpers import check, submit_in_turns
from tests.store.test_checks import make_caller
from tests.test_recorder import stored_ids

# The sync process, tracing: its pid first, then a line before each fsync; it fails its
# fsyncs while the file ``<trace>.fail`` exists and takes ``<trace>.slow``'s seconds more.
TRACED = """
import os, sys, time
from gateway import logsync
database, trace = sys.argv[1:]
with open(trace, "a") as f:
    f.write(f"pid {os.getpid()}\\n")

class Traced(logsync.LogFile):
    def sync(self):
        with open(trace, "a") as f:
            f.write("sync-start\\n")
        if os.path.exists(trace + ".fail"):
            raise OSError(5, "Input/output error")
        if os.path.exists(trace + ".slow"):
            time.sleep(float(open(trace + ".slow").read()))
        super().sync()

logsync.serve(Traced(database))
"""


class Trace:
    def __init__(self, path: Path) -> None:
        self.path = path

    def command(self, database: Path) -> list[str]:
        return [sys.executable, "-c", TRACED, str(database), str(self.path)]

    def lines(self) -> list[str]:
        return self.path.read_text().splitlines() if self.path.exists() else []

    def syncs(self) -> int:
        return self.lines().count("sync-start")

    def pid(self) -> int:
        return int(self.lines()[0].split()[1])


class CountingWriter(CheckWriter):
    """A real inline writer that notes how many fsyncs had begun when each commit ended."""

    def __init__(self, db: Path, trace: Trace) -> None:
        super().__init__(db, synchronous="NORMAL")
        self.trace = trace
        self.syncs_before_commit: dict[str, int] = {}
        self.transactions = 0

    def try_write(
        self, checks: list[CheckRecord], feedback: list[FeedbackRecord]
    ) -> list[bool] | None:
        result = super().try_write(checks, feedback)
        if result is not None:
            self.transactions += 1
            syncs = self.trace.syncs()
            self.syncs_before_commit |= {c.check_id: syncs for c in checks}
        return result


async def started_recorder(
    db: Path,
    sync_command: Callable[[Path], list[str]],
    inline: CheckWriter | None = None,
) -> Recorder:
    """A recorder on ``db`` whose inline writer is ``inline`` (a plain one if None) and
    whose log is fsynced by the process ``sync_command`` starts."""
    recorder = Recorder(
        lambda: CheckWriter(db),
        inline_factory=(inline or CheckWriter(db, synchronous="NORMAL")).open,
        sync_command=sync_command,
    )
    await recorder.start()
    return recorder


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_every_acknowledged_record_was_synced_by_the_process_after_its_commit(
    tmp_path: Path,
) -> None:
    db = tmp_path / "g.db"
    caller = make_caller(db).caller_id
    trace = Trace(tmp_path / "trace")
    writer = CountingWriter(db, trace)
    acknowledged_after: dict[str, int] = {}

    async def scenario() -> None:
        recorder = await started_recorder(db, trace.command, writer)
        await submit_in_turns(
            recorder, caller, lambda cid: acknowledged_after.__setitem__(cid, trace.syncs())
        )

    asyncio.run(scenario())
    assert len(stored_ids(db)) == 300
    assert len(writer.syncs_before_commit) == 300  # all committed inline
    for check_id, before in writer.syncs_before_commit.items():
        assert acknowledged_after[check_id] >= before + 1, check_id
    assert trace.syncs() < 300, "one fsync serves several commits"


def test_records_submitted_during_the_process_fsync_are_committed_together_after_it(
    tmp_path: Path,
) -> None:
    db = tmp_path / "g.db"
    caller = make_caller(db).caller_id
    trace = Trace(tmp_path / "trace")
    writer = CountingWriter(db, trace)

    async def scenario() -> None:
        recorder = await started_recorder(db, trace.command, writer)
        assert await recorder.submit(check(1, caller))
        Path(f"{trace.path}.slow").write_text("0.3")  # the disk slows down: 300 ms
        futures = [recorder.submit(check(2, caller))]
        await until(lambda: trace.syncs() == 2)
        started = time.monotonic()
        for turn in range(20):  # 20 turns of the loop during that fsync, 5 checks each
            futures += [recorder.submit(check(3 + turn * 5 + n, caller)) for n in range(5)]
            await asyncio.sleep(0.001)
        # 20 turns of about a millisecond: had the loop waited for the fsync, 300 ms
        assert time.monotonic() - started < 0.2, "the loop went on during the fsync"
        assert not futures[0].done(), "not acknowledged before its fsync is over"
        assert writer.transactions == 2, "held back while the fsync runs"
        Path(f"{trace.path}.slow").unlink()
        assert all(await asyncio.gather(*futures))
        await recorder.stop()

    asyncio.run(scenario())
    assert len(stored_ids(db)) == 102
    assert writer.transactions == 3  # check 1, check 2, then the 100 held back, in one


def test_a_failed_fsync_in_the_process_fails_what_it_was_to_cover(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    caller = make_caller(db).caller_id
    trace = Trace(tmp_path / "trace")
    failing = Path(f"{trace.path}.fail")

    async def scenario() -> None:
        recorder = await started_recorder(db, trace.command)
        failing.touch()
        with pytest.raises(RecorderFull):
            await recorder.submit(check(1, caller))
        assert recorder.last_error == "OSError: [Errno 5] Input/output error"
        failing.unlink()
        assert await recorder.submit(check(2, caller))
        assert recorder.last_error == ""
        await recorder.stop()

    asyncio.run(scenario())


def test_a_killed_sync_process_hands_its_batches_to_the_thread(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "g.db"
    caller = make_caller(db).caller_id
    trace = Trace(tmp_path / "trace")

    async def scenario() -> None:
        recorder = await started_recorder(db, trace.command)
        assert await recorder.submit(check(1, caller))
        assert not recorder.sync_by_thread
        Path(f"{trace.path}.slow").write_text("30")
        in_flight = recorder.submit(check(2, caller))
        await until(lambda: trace.syncs() == 2)
        os.kill(trace.pid(), signal.SIGKILL)  # in the middle of its fsync
        assert await asyncio.wait_for(in_flight, 10)  # the thread synced it
        assert await recorder.submit(check(3, caller))
        assert trace.syncs() == 2, "the thread fsyncs from now on"
        assert recorder.sync_by_thread  # gateway_recorder_sync_by_thread is 1
        await recorder.stop()

    asyncio.run(scenario())
    assert len(stored_ids(db)) == 3
    assert "the sync process ended (exit status -9)" in caplog.text


def test_a_sync_process_that_cannot_start_leaves_the_fsyncs_to_the_thread(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "g.db"
    caller = make_caller(db).caller_id

    async def scenario() -> None:
        recorder = await started_recorder(db, lambda _: [str(tmp_path / "no-such-program")])
        assert recorder.sync_by_thread
        assert await recorder.submit(check(1, caller))
        await recorder.stop()

    asyncio.run(scenario())
    assert len(stored_ids(db)) == 1
    assert "no sync process" in caplog.text


def test_the_sync_process_ends_with_its_recorder(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    caller = make_caller(db).caller_id
    trace = Trace(tmp_path / "trace")

    async def scenario() -> None:
        recorder = await started_recorder(db, trace.command)
        durable = recorder.submit_many([check(n, caller) for n in range(1, 51)])
        await recorder.stop()  # before the loop turned: stop commits and syncs them
        assert durable.result() is True

    asyncio.run(scenario())
    assert len(stored_ids(db)) == 50
    with pytest.raises(ProcessLookupError):
        os.kill(trace.pid(), 0)  # ended and reaped


def test_the_default_sync_process_answers_and_reports_errors(tmp_path: Path) -> None:
    """``python -m gateway.logsync``, as a worker starts it: ``k`` for an fsync done, ``e``
    with the error's text for one that failed (here: no database at that path)."""
    db = tmp_path / "g.db"
    make_caller(db)
    for database, answer in ((db, b"k"), (tmp_path / "missing.db", b"e")):
        with subprocess.Popen(
            logsync.command(database), stdin=subprocess.PIPE, stdout=subprocess.PIPE
        ) as proc:
            out, _ = proc.communicate(b"s", timeout=30)
        assert out[:1] == answer
        assert proc.returncode == 0
    assert b"No such file or directory" in out


def test_the_log_is_reopened_when_replaced_and_the_database_synced_without_one(
    tmp_path: Path,
) -> None:
    db = tmp_path / "g.db"
    make_caller(db)
    log = logsync.LogFile(str(db))
    wal = Path(f"{db}-wal")
    with CheckWriter(db, synchronous="NORMAL") as writer:
        writer.write([check(1, make_caller(db).caller_id)])
        assert wal.exists()
        log.sync()
        assert log._fd is not None
        first = os.fstat(log._fd).st_ino
    assert not wal.exists()  # the last connection closed: checkpointed and removed
    log.sync()  # the database file is synced: no error
    wal.write_bytes(b"")  # a new log, a new file
    log.sync()
    assert log._fd is not None
    assert os.fstat(log._fd).st_ino == os.stat(wal).st_ino != first
    log.close()


def test_a_new_log_is_fsynced_with_its_directory_then_fdatasynced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fdatasync makes the log's frames and size durable; a log just created needs its name
    on disk as well, so its first sync is a full fsync of it and of its directory."""
    db = tmp_path / "g.db"
    wal = Path(f"{db}-wal")
    wal.write_bytes(b"frames")
    calls: list[tuple[str, str]] = []

    def traced(name: str, real: Callable[[int], None]) -> Callable[[int], None]:
        def call(fd: int) -> None:
            calls.append((name, os.readlink(f"/proc/self/fd/{fd}")))
            real(fd)

        return call

    monkeypatch.setattr(os, "fsync", traced("fsync", os.fsync))
    monkeypatch.setattr(os, "fdatasync", traced("fdatasync", os.fdatasync))
    log = logsync.LogFile(str(db))
    log.sync()
    log.sync()
    assert calls == [("fsync", str(wal)), ("fsync", str(tmp_path)), ("fdatasync", str(wal))]
    wal.unlink()
    wal.write_bytes(b"")  # replaced: a new file whose name is not yet durable
    calls.clear()
    log.sync()
    assert calls == [("fsync", str(wal)), ("fsync", str(tmp_path))]
    log.close()

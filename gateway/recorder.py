"""Write-behind recording of checks and feedback, with group commit.

Handlers ``submit`` a record and await the future it returns; it resolves once
the record is durable. Three paths lead there:

* **inline** (when an ``inline_factory`` is given: SQLite): the records submitted
  during one turn of the event loop are inserted and committed at the end of
  that turn, in the loop's thread, by a connection that never waits for the
  write lock (``synchronous = NORMAL``: no fsync in the commit, about 0.1 ms
  for a batch). With ``durable`` the log is then fsynced before the batch is
  acknowledged, once for every batch committed meanwhile, by the worker's **sync
  process** (``gateway.syncprocess``): the loop goes on with the next requests while
  the disk works, and hears of the fsync through its own ``epoll``. The records of
  the turns that come during an fsync are held back and committed together when it
  is over (they would wait for the next fsync anyway). Measured: inline commits
  double a worker's throughput against the writer thread below; an fsync in the
  loop's thread stops every request meanwhile (0.1-0.5 ms), and a syncer thread
  must be woken and take the GIL from the busy loop (0.4 ms median); the sync
  process raised a worker's throughput by a fifth over the better of the two. If
  the process cannot be started or ends, the **syncer thread**
  (``gateway.walsync``) takes over: same contract, nothing acknowledged unsynced.
* **pipelined** (when a ``batch_writer_factory`` is given: PostgreSQL): each turn's
  records go as one batch, awaited in the loop, several batches in flight at once on
  the writer's connections; the server makes each durable before its commit returns
  (see ``gateway.pipeline``). No thread, no lock to wait for.
* the **writer thread** (``gateway.writerthread``): when the lock is held elsewhere
  (another worker, an import, the upkeep) the inline attempt gives up at once and the
  batch goes to a thread that waits for the lock, inserts and commits (with its own
  fsync when durable), taking everything queued meanwhile as the next batch.

With a ``record_log_factory`` (SQLite, durable: the default) no one waits for an fsync
of SQLite's log: once committed, a turn's records are written as one frame to the
worker's **record log** (``gateway.recordlog``), a file written in place with
``O_DIRECT | O_DSYNC``, and acknowledged when that write returns, in the loop's thread
(0.2 ms median under load, against 0.75-0.9 ms from asking the sync process to hearing
its answer); SQLite's log is fsynced behind, by the record log's own thread. The sync
process is then not started; it remains for when the log cannot be opened. With a
``store_delay``, a turn's checks are not even inserted before their frame: they are
inserted a few milliseconds later, many turns in one transaction, by a thread of their
own beside the loop (``gateway.storebehind``); feedback still is, at once, by the loop.

The queue is bounded: when full, ``submit`` raises :class:`RecorderFull`
and the caller answers 503 with ``Retry-After``; nothing is dropped silently.
If a batch cannot be committed its futures fail, so no caller is told a
record is durable when it is not. ``stop`` refuses new records, flushes what
is queued and closes the writer.

The upkeep (indexing by subject, roll-ups, WAL checkpoints) runs every second,
indexing only while the recorder is idle (see ``gateway.upkeep``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from gateway import logsync, upkeep
from gateway.model import CheckRecord, FeedbackRecord
from gateway.pipeline import BatchWriter, Pipeline
from gateway.recording import InlineWriter, Joint, Pending, RecorderFull, Writer
from gateway.recordlog import RecordLog
from gateway.storebehind import StoreBehind
from gateway.syncprocess import Syncer, SyncProcess, start_syncer
from gateway.writerthread import WriterThread

log = logging.getLogger(__name__)

#: Seconds without a commit after which the recorder counts as idle (upkeep may index).
IDLE_AFTER = 0.25
#: Seconds between inline attempts while the write lock is held elsewhere, and how long
#: they go on before the batch is handed to the writer thread (which waits for the lock).
INLINE_RETRY = 0.0005
INLINE_PATIENCE = 0.05


class Recorder:
    def __init__(
        self,
        writer_factory: Callable[[], Writer] | None,
        *,
        upkeep_factory: Callable[[], upkeep.Upkeep] | None = None,
        upkeep_interval: float = 1.0,
        max_queue: int = 20_000,
        max_batch: int = 1_000,
        inline_factory: Callable[[], InlineWriter] | None = None,
        durable: bool = True,
        on_batch: Callable[[int, float], None] | None = None,
        batch_writer_factory: Callable[[], Awaitable[BatchWriter]] | None = None,
        async_upkeep_factory: Callable[[], Awaitable[upkeep.AsyncUpkeep]] | None = None,
        sync_command: Callable[[Path], list[str]] | None = logsync.command,
        record_log_factory: Callable[[InlineWriter], RecordLog] | None = None,
        store_delay: float = 0.0,
    ) -> None:
        if (writer_factory is None) == (batch_writer_factory is None):
            raise ValueError("give a writer_factory or a batch_writer_factory, not both")
        self._writer_factory = writer_factory
        self._batch_writer_factory = batch_writer_factory
        self._pipeline: Pipeline[Pending] | None = None
        self._inline_factory = inline_factory
        self._inline: InlineWriter | None = None
        self._durable = durable
        #: Told (records, seconds from the start of its commit to durable) of each batch.
        self._on_batch = on_batch
        self._writing: dict[int, float] = {}  # id(batch) → when its commit began
        self._syncer: Syncer[Pending] | None = None
        #: The sync process's command line for the database's path; None: the thread.
        self._sync_command = sync_command
        self._record_log_factory = record_log_factory
        #: Where a durable inline commit's records are made durable, if not by a syncer.
        self.record_log: RecordLog | None = None
        #: Seconds a framed check may wait for its insert (0: inserted before its frame).
        self._store_delay = store_delay
        #: The checks framed and not yet inserted (with a record log and a store delay).
        self.behind: StoreBehind | None = None
        self._turn: list[Pending] = []
        self._turn_scheduled = False
        self._busy_since: float | None = None
        self.max_queue = max_queue
        self.max_batch = max_batch
        self._thread: WriterThread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._upkeep_factory = upkeep_factory
        self._async_upkeep_factory = async_upkeep_factory
        self._upkeep_interval = upkeep_interval
        self._upkeep_task: asyncio.Task[None] | None = None
        self._accepting = False
        self.batches = 0
        self.records = 0
        self.last_write = 0.0
        self._last_error = ""

    @property
    def last_error(self) -> str:
        """Why the last commit failed, or the last insert of held checks, until one
        succeeds ("" when none is failing)."""
        held_error = self.behind.error if self.behind is not None else ""
        return self._last_error or held_error

    @property
    def depth(self) -> int:
        """Records submitted and not yet durable, and checks durable (framed) and not yet
        in the store: when the store cannot take them for long, callers get 503."""
        waiting_sync = self._syncer.depth if self._syncer is not None else 0
        in_pipeline = self._pipeline.depth if self._pipeline is not None else 0
        held = len(self.behind) if self.behind is not None else 0
        queued = len(self._thread) if self._thread is not None else 0
        return queued + len(self._turn) + waiting_sync + in_pipeline + held

    @property
    def sync_by_thread(self) -> bool:
        """Whether the log is fsynced by the syncer thread because the sync process could
        not be started or has ended (slower, as safe)."""
        syncer = self._syncer
        if isinstance(syncer, SyncProcess):
            return syncer.fell_back
        return syncer is not None and self._sync_command is not None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self._batch_writer_factory is not None:
            self._pipeline = Pipeline(
                await self._batch_writer_factory(),
                began=self._began,
                done=self._committed,
                failed=self._failed,
                max_batch=self.max_batch,
            )
            self._start_accepting()
            return
        assert self._writer_factory is not None
        self._thread = WriterThread(
            self._loop,
            self._writer_factory,
            self.max_batch,
            began=self._began,
            committed=self._committed,
            failed=self._failed,
        )
        await self._thread.start()  # the writer is connected (or its error is raised here)
        if self._inline_factory is not None:
            self._inline = await asyncio.to_thread(self._inline_factory)
            if self._durable:
                self.record_log = await self._open_record_log(self._inline)
                if self.record_log is None:
                    self._syncer = self._start_syncer()
                elif self._store_delay > 0:
                    self.behind = StoreBehind(
                        self._loop,
                        self._inline,
                        self.record_log,
                        self._store_delay,
                        self._inline_factory,
                    )
        self._start_accepting()

    async def _open_record_log(self, inline: InlineWriter) -> RecordLog | None:
        if self._record_log_factory is None:
            return None
        try:
            return await asyncio.to_thread(self._record_log_factory, inline)
        except OSError as exc:
            log.error("no record log (%s): the store's log is fsynced for every batch", exc)
            return None

    def held_check(self, check_id: str) -> CheckRecord | None:
        """The check ``check_id`` if this worker framed it and has not inserted it yet."""
        return self.behind.get(check_id) if self.behind is not None else None

    async def store_held(self) -> None:
        """Return once every check this worker framed before the call is in the store
        (not those framed meanwhile: under load some always are)."""
        behind = self.behind
        if behind is None:
            return
        framed = behind.held_total
        while behind.inserted < framed and self.behind is behind:
            behind.store()
            if behind.inserted < framed:
                await asyncio.sleep(INLINE_RETRY)

    def _store_held_at_stop(self) -> None:
        if self.behind is None:
            return
        try:
            self.behind.store_blocking()
        except Exception as exc:  # their frames stay uncovered: recovered at the next start
            log.error("%d framed checks left to recover: %s", len(self.behind), exc)

    def _start_syncer(self) -> Syncer[Pending]:
        assert self._loop is not None
        assert self._inline is not None
        command = self._sync_command(self._inline.path) if self._sync_command else None
        return start_syncer(
            self._loop, self._inline, command, self._committed, self._failed, self._sync_idle
        )

    def _start_accepting(self) -> None:
        self._accepting = True
        interval = self._upkeep_interval
        if self._upkeep_factory is not None:
            run = upkeep.in_thread(self._upkeep_factory, interval, self.busy)
        elif self._async_upkeep_factory is not None:
            run = upkeep.in_loop(self._async_upkeep_factory, interval, self.busy)
        else:
            return
        self._upkeep_task = asyncio.create_task(run, name="recorder-upkeep")

    def submit(self, record: CheckRecord | FeedbackRecord) -> asyncio.Future[bool]:
        """Queue a record; the future resolves (True for a new feedback) once committed."""
        if not self._accepting or self.depth >= self.max_queue:
            raise RecorderFull()
        assert self._loop is not None
        future: asyncio.Future[bool] = self._loop.create_future()
        self._enqueue([(record, future)])
        return future

    def submit_many(self, records: list[CheckRecord]) -> asyncio.Future[bool]:
        """Queue several records, all or none; the future resolves once all are committed
        (at once for none)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if not records:
            future.set_result(True)
            return future
        if not self._accepting or self.depth + len(records) > self.max_queue:
            raise RecorderFull()
        joint = Joint(future, len(records))
        self._enqueue([(record, joint) for record in records])
        return future

    def _enqueue(self, pending: list[Pending]) -> None:
        if self._pipeline is not None:
            self._pipeline.add(pending)
            return
        assert self._thread is not None
        if self._inline is not None and not self._thread:  # the thread has nothing waiting
            self._turn.extend(pending)
            if not self._turn_scheduled:
                self._turn_scheduled = True
                assert self._loop is not None
                self._loop.call_soon(self._flush_turn)
            return
        self._thread.add(pending)

    # -- the inline path ------------------------------------------------------------------
    def _lock_busy(self, batch: list[Pending]) -> None:
        """Try again in a moment (locks are held for milliseconds: another worker's commit,
        a step of the upkeep); after ``INLINE_PATIENCE`` the writer thread waits for it
        (unless checks are held behind their frames: feedback, all that waits then, may
        need one of them inserted first, which the thread cannot do)."""
        assert self._loop is not None
        now = time.monotonic()
        if self._busy_since is None:
            self._busy_since = now
        patient = self.behind is not None or now - self._busy_since < INLINE_PATIENCE
        if patient and self._accepting:
            self._turn[:0] = batch  # ahead of what came since
            if not self._turn_scheduled:
                self._turn_scheduled = True
                self._loop.call_later(INLINE_RETRY, self._flush_turn)
            return
        self._busy_since = None
        assert self._thread is not None
        self._thread.add(batch)

    def _sync_idle(self) -> None:
        """The fsync under way is over: commit what was held back meanwhile."""
        if self._turn and not self._turn_scheduled:
            self._flush_turn()

    def _flush_turn(self) -> None:
        """Commit what this turn of the loop submitted, unless the lock is held elsewhere.

        While the syncer's fsync runs, the records wait (at most ``max_batch`` of them):
        they would wait for the next fsync anyway, and one commit for all of them writes
        the log's pages once (see ``gateway.walsync``)."""
        self._turn_scheduled = False
        if not self._turn:
            return
        syncer = self._syncer
        if (
            syncer is not None
            and syncer.busy
            and self._accepting
            and len(self._turn) < self.max_batch
        ):
            return  # _sync_idle commits them
        batch, self._turn = self._turn, []
        if self.behind is not None:
            self._flush_behind(batch, self.behind)
            return
        self._began(batch)
        assert self._inline is not None
        checks = [r for r, _ in batch if isinstance(r, CheckRecord)]
        feedback = [r for r, _ in batch if isinstance(r, FeedbackRecord)]
        try:
            inserted = self._inline.try_write(checks, feedback)
        except Exception as exc:
            self._busy_since = None
            self._failed(batch, exc)
            return
        if inserted is None:  # the lock is taken elsewhere
            del self._writing[id(batch)]
            self._lock_busy(batch)
            return
        self._busy_since = None
        if self.record_log is not None:
            try:
                self.record_log.write(checks, feedback)
            except Exception as exc:  # neither the frame nor the store's fsync: not durable
                self._failed(batch, exc)
                return
            self._committed(batch, inserted)
        elif self._syncer is None:
            self._committed(batch, inserted)
        else:
            self._syncer.after_sync(batch, inserted)

    def _flush_behind(self, batch: list[Pending], behind: StoreBehind) -> None:
        """A turn with its checks held behind their frame: the checks are framed and
        answered whatever the store's lock; feedback is inserted first, with every check
        held (its answer, new or not, comes from the store), and waits for the lock."""
        assert self.record_log is not None
        checks = [r for r, _ in batch if isinstance(r, CheckRecord)]
        feedback = [r for r, _ in batch if isinstance(r, FeedbackRecord)]
        inserted: list[bool] = []
        stored = False
        if feedback or behind.full:
            try:
                found = behind.insert_with(checks, feedback)
            except Exception as exc:
                self._failed(batch, exc)
                return
            if found is None and behind.full:  # as many held as may be: all of it waits
                self._lock_busy(batch)
                return
            if found is None:  # the lock is taken elsewhere: the feedback waits, not the checks
                self._lock_busy([p for p in batch if isinstance(p[0], FeedbackRecord)])
                batch = [p for p in batch if isinstance(p[0], CheckRecord)]
                feedback = []
                if not batch:
                    return
            else:
                self._busy_since = None
                inserted = found
                stored = True
        self._began(batch)
        try:
            if stored:  # the checks went in with the feedback, or for want of room
                self.record_log.write(checks, feedback)
            else:
                behind.hold(checks)
                behind.framed(self.record_log.write(checks, feedback, stored=False))
        except Exception as exc:  # neither the frame nor the store's fsync: not durable
            self._failed(batch, exc)
            return
        self._committed(batch, inserted)

    async def stop(self) -> None:
        """Refuse new records, flush the queue, close the writer."""
        self._accepting = False
        if self._upkeep_task is not None:
            self._upkeep_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._upkeep_task
            self._upkeep_task = None
        if self._pipeline is not None:
            await self._pipeline.close()
            await asyncio.sleep(0)
            return
        self._store_held_at_stop()  # before the writer thread may take feedback on them
        self._flush_turn()
        if self._syncer is not None:
            await self._syncer.stop()
            self._syncer = None
        self._store_held_at_stop()
        if self.behind is not None:
            self.behind.close()
            self.behind = None
        if self.record_log is not None:
            self.record_log.close()
            self.record_log = None
        if self._inline is not None:
            self._inline.close()
            self._inline = None
        if self._thread is not None:
            await self._thread.stop()
            self._thread = None

    # -- batches' outcome ------------------------------------------------------------
    def _began(self, batch: list[Pending]) -> None:
        self._writing[id(batch)] = time.perf_counter()

    def _committed(self, batch: list[Pending], inserted: list[bool]) -> None:
        began = self._writing.pop(id(batch), None)
        if self._on_batch is not None and began is not None:
            self._on_batch(len(batch), time.perf_counter() - began)
        self._last_error = ""
        self.last_write = time.monotonic()
        self.batches += 1
        self.records += len(batch)
        feedback_results = iter(inserted)
        for record, future in batch:
            result = next(feedback_results) if isinstance(record, FeedbackRecord) else True
            if not future.done():  # a caller that went away: committed all the same
                future.set_result(result)

    def _failed(self, batch: list[Pending], exc: Exception) -> None:
        self._writing.pop(id(batch), None)
        self._last_error = f"{type(exc).__name__}: {exc}"
        log.error("batch of %d records not committed: %s", len(batch), self._last_error)
        for _, future in batch:
            if not future.done():
                future.set_exception(RecorderFull(retry_after=2))

    # -- upkeep --------------------------------------------------------------------------
    def busy(self) -> bool:
        """Whether this recorder committed lately (asked from the upkeep's thread too)."""
        return time.monotonic() - self.last_write < IDLE_AFTER

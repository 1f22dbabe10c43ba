"""Prometheus metrics (``GET /metrics``), cheap on the hot path and right with several workers.

A check costs a few dict increments here (:class:`Tally`, about 0.3 µs): counting it
through ``prometheus_client`` at once would cost a locked write to a shared file per
sample, several per check. Every second, and before every scrape, each worker adds
what it tallied to ``prometheus_client``'s metrics (:meth:`Metrics.flush`).

With several workers, ``serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at an empty
directory before they start: ``prometheus_client`` keeps each worker's values in a
file there and a scrape, whichever worker takes it, adds them up (counters and
histograms summed; per-worker gauges labelled by ``pid``). A worker that stops marks
itself dead, and one that starts marks dead the files of workers that are gone, so
their gauges vanish while their counts stay in the totals (no reset, no double count).

Labels are bounded: matter types, verdicts, list types, measure codes and states come
from the catalog; no USCC, key or caller is ever a label.
"""

from __future__ import annotations

import contextlib
import os
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"


class Hit(Protocol):
    @property
    def list_type(self) -> str: ...


class Returned(Protocol):
    @property
    def code(self) -> str: ...

    @property
    def state(self) -> str: ...


#: Sub-millisecond buckets for a check (seconds), up to the seconds a stall would take.
LATENCY_BUCKETS: Final = (
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01,
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
BATCH_BUCKETS: Final = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
FLUSH_BUCKETS: Final = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0)

CHECK_SECONDS = Histogram(
    "gateway_check_duration_seconds",
    "Server time of a check request, recording included (endpoint: check or batch).",
    ["endpoint"],
    buckets=LATENCY_BUCKETS,
)
CHECKS = Counter(
    "gateway_checks", "Checks answered, by matter type and verdict.", ["matter", "verdict"]
)
PROBLEMS = Counter(
    "gateway_check_problems",
    "Check requests answered with a problem (4xx, 5xx), by endpoint and status.",
    ["endpoint", "status"],
)
HITS = Counter("gateway_hits", "List entries that a check found, by list type.", ["list_type"])
MEASURES = Counter(
    "gateway_measures", "Measures returned by checks, by code and state.", ["code", "state"]
)
FEEDBACK = Counter(
    "gateway_feedback_measures",
    "Measures reported in feedback, executed or not.",
    ["executed"],
)
RECORDER_QUEUE = Gauge(
    "gateway_recorder_queue_depth",
    "Checks and feedback submitted and not yet durable, or durable in the record log and "
    "not yet in the store, per worker.",
    multiprocess_mode="liveall",
)
RECORDER_BATCH = Histogram(
    "gateway_recorder_batch_size", "Records per commit of the recorder.", buckets=BATCH_BUCKETS
)
RECORDER_FLUSH = Histogram(
    "gateway_recorder_flush_seconds",
    "Time from a batch's commit to its acknowledgement (made durable: the record log's "
    "write, or the fsync of SQLite's log).",
    buckets=FLUSH_BUCKETS,
)
RECORDER_SYNC_BY_THREAD = Gauge(
    "gateway_recorder_sync_by_thread",
    "1 while the worker fsyncs the log from a thread: its sync process could not run.",
    multiprocess_mode="liveall",
)
RECORD_LOG_STALLS = Counter(
    "gateway_record_log_stalls",
    "Writes to the record log that first waited for an fsync of the store: the ring was "
    "full of frames not yet durable in the store (the disk behind, or the ring too small).",
)
RECORD_LOG_FALLBACKS = Counter(
    "gateway_record_log_fallbacks",
    "Batches made durable by an fsync of the store because their frame could not be "
    "written to the record log (an I/O error, or more records than the ring holds).",
)
SNAPSHOT_VERSION = Gauge(
    "gateway_snapshot_version",
    "Change-log sequence number the worker's snapshot is at.",
    multiprocess_mode="liveall",
)
SNAPSHOT_AGE = Gauge(
    "gateway_snapshot_age_seconds",
    "Seconds since the worker last read the change log successfully.",
    multiprocess_mode="liveall",
)
SNAPSHOT_ENTRIES = Gauge(
    "gateway_snapshot_entries",
    "Live entries in the worker's snapshot.",
    multiprocess_mode="liveall",
)
CHANGE_LAG = Gauge(
    "gateway_change_log_lag",
    "Changes in the store's log that the worker's snapshot has not applied yet.",
    multiprocess_mode="liveall",
)
DEGRADED = Gauge(
    "gateway_degraded",
    "1 while the worker cannot read the change stream in Redis and follows the store instead.",
    multiprocess_mode="liveall",
)
FEEDBACK_PENDING = Gauge(
    "gateway_feedback_pending",
    "Checks whose measures need feedback and have none (the store's, rolled up).",
    multiprocess_mode="livemax",
)
FEEDBACK_OVERDUE = Gauge(
    "gateway_feedback_overdue",
    "Of those, the checks older than GATEWAY_FEEDBACK_DUE_DAYS (the store's, rolled up).",
    multiprocess_mode="livemax",
)
CATALOG_INFO = Gauge(
    "gateway_catalog_info",
    "The catalog version in force in the worker (1; an earlier version is 0).",
    ["version"],
    multiprocess_mode="liveall",
)


class Tally:
    """What one worker counted since the last flush: plain ints, no locks."""

    __slots__ = (
        "batch_sizes",
        "checks",
        "feedback",
        "flush_seconds",
        "hits",
        "latency",
        "measures",
        "problems",
    )

    def __init__(self) -> None:
        self.checks: dict[tuple[str, str], int] = {}
        self.hits: dict[str, int] = {}
        self.measures: dict[tuple[str, str], int] = {}
        self.feedback: dict[bool, int] = {}
        self.problems: dict[tuple[str, int], int] = {}
        #: endpoint → [count per bucket..., count above every bound (+Inf), sum]
        self.latency: dict[str, list[float]] = {}
        #: Of the recorder's batches, as the latency: records per commit, and seconds
        #: from commit to acknowledgement (hundreds a second: observed one by one at
        #: the flush, they held the loop for milliseconds).
        self.batch_sizes: list[float] = _no_counts(BATCH_BUCKETS)
        self.flush_seconds: list[float] = _no_counts(FLUSH_BUCKETS)

    def check(
        self, matter: str, verdict: str, hits: Iterable[Hit], measures: Iterable[Returned]
    ) -> None:
        """One check answered: its verdict, the list type of each hit, each measure."""
        key = (matter, verdict)
        self.checks[key] = self.checks.get(key, 0) + 1
        for hit in hits:
            self.hits[hit.list_type] = self.hits.get(hit.list_type, 0) + 1
        for measure in measures:
            code_state = (measure.code, measure.state)
            self.measures[code_state] = self.measures.get(code_state, 0) + 1

    def took(self, endpoint: str, seconds: float) -> None:
        found = self.latency.get(endpoint)
        if found is None:
            found = self.latency[endpoint] = _no_counts(LATENCY_BUCKETS)
        _count(found, LATENCY_BUCKETS, seconds)

    def problem(self, endpoint: str, status: int) -> None:
        key = (endpoint, status)
        self.problems[key] = self.problems.get(key, 0) + 1

    def reported(self, executed: Iterable[bool]) -> None:
        for value in executed:
            self.feedback[value] = self.feedback.get(value, 0) + 1

    def batch(self, records: int, seconds: float) -> None:
        _count(self.batch_sizes, BATCH_BUCKETS, records)
        _count(self.flush_seconds, FLUSH_BUCKETS, seconds)


def _no_counts(bounds: Sequence[float]) -> list[float]:
    """A histogram's tally: a count per bucket, one above every bound (+Inf), the sum."""
    return [0.0] * (len(bounds) + 2)


def _count(counts: list[float], bounds: Sequence[float], value: float) -> None:
    """One observation of ``value`` into ``counts`` (see :func:`_no_counts`); a value on
    a bound counts in that bound's bucket (``le``), as ``prometheus_client`` counts it."""
    counts[bisect_left(bounds, value)] += 1
    counts[-1] += value


class Metrics:
    """This worker's tally and its flush into ``prometheus_client``."""

    def __init__(self) -> None:
        self.tally = Tally()
        self._catalog = ""
        self._record_log_counts = (0, 0)  # (stalls, fallbacks) already counted

    def flush(self) -> None:
        """Add what was tallied to the exported metrics, and start a new tally."""
        tally, self.tally = self.tally, Tally()
        for (matter, verdict), n in tally.checks.items():
            CHECKS.labels(matter, verdict).inc(n)
        for list_type, n in tally.hits.items():
            HITS.labels(list_type).inc(n)
        for (code, state), n in tally.measures.items():
            MEASURES.labels(code, state).inc(n)
        for (endpoint, status), n in tally.problems.items():
            PROBLEMS.labels(endpoint, str(status)).inc(n)
        for executed, n in tally.feedback.items():
            FEEDBACK.labels("true" if executed else "false").inc(n)
        for endpoint, counts in tally.latency.items():
            _add_to_histogram(CHECK_SECONDS.labels(endpoint), counts)
        if any(tally.batch_sizes[:-1]):
            _add_to_histogram(RECORDER_BATCH, tally.batch_sizes)
            _add_to_histogram(RECORDER_FLUSH, tally.flush_seconds)

    def set_feedback_backlog(self, pending: int, overdue: int) -> None:
        FEEDBACK_PENDING.set(pending)
        FEEDBACK_OVERDUE.set(overdue)

    def set_state(
        self,
        *,
        queue_depth: int,
        snapshot_version: int,
        snapshot_entries: int,
        seconds_since_read: float,
        change_lag: int,
        catalog_version: str,
        degraded: bool = False,
        sync_by_thread: bool = False,
        record_log_stalls: int = 0,
        record_log_fallbacks: int = 0,
    ) -> None:
        RECORDER_QUEUE.set(queue_depth)
        RECORD_LOG_STALLS.inc(record_log_stalls - self._record_log_counts[0])
        RECORD_LOG_FALLBACKS.inc(record_log_fallbacks - self._record_log_counts[1])
        self._record_log_counts = (record_log_stalls, record_log_fallbacks)
        RECORDER_SYNC_BY_THREAD.set(1 if sync_by_thread else 0)
        DEGRADED.set(1 if degraded else 0)
        SNAPSHOT_VERSION.set(snapshot_version)
        SNAPSHOT_ENTRIES.set(snapshot_entries)
        SNAPSHOT_AGE.set(seconds_since_read)
        CHANGE_LAG.set(change_lag)
        if catalog_version != self._catalog:
            if self._catalog:
                CATALOG_INFO.labels(self._catalog).set(0)
            CATALOG_INFO.labels(catalog_version).set(1)
            self._catalog = catalog_version


def _add_to_histogram(child: Histogram, counts: list[float]) -> None:
    """Add a tally's bucket counts and sum to a histogram child (``prometheus_client``
    keeps a value per bucket and one for the sum; its public API adds one observation
    at a time). ``tests/test_metrics.py`` checks the result against ``observe``."""
    for bucket, n in zip(child._buckets, counts[:-1], strict=True):
        if n:
            bucket.inc(n)
    child._sum.inc(counts[-1])


def exposition() -> tuple[bytes, str]:
    """The text a scrape gets: every worker's metrics when several share a directory."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def forget_dead_workers() -> None:
    """Mark dead the metric files of workers that are gone (a worker that was killed)."""
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return
    pids = set()
    for path in Path(directory).glob("*_*.db"):
        with contextlib.suppress(ValueError):
            pids.add(int(path.stem.rsplit("_", 1)[1]))
    for pid in pids - {os.getpid()}:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
        except PermissionError:
            pass


def worker_stopped() -> None:
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

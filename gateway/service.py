"""The check itself: validate, look up, decide, answer, record.

Shared by the single check (the hot path) and the batch check. Everything up
to the recording is synchronous, so the snapshot version and catalog a check
records are the ones it used.
"""

from __future__ import annotations

import asyncio
import time
from datetime import date

import msgspec

from gateway.clock import CheckClock
from gateway.engine import UnknownMatter, decide
from gateway.identifiers import InvalidUSCC, validate_uscc
from gateway.ids import uuid7
from gateway.metrics import Metrics
from gateway.model import Caller, CheckRecord, FeedbackRecord, Grade, ListEntry, Measure
from gateway.privacy import redact
from gateway.problems import FieldError, Problem, invalid, overloaded
from gateway.recorder import Recorder
from gateway.recording import RecorderFull
from gateway.snapshot import Snapshot
from measures_catalog import Catalog

#: How many validated codes a worker remembers before it starts afresh.
VALID_CODES_KEPT = 200_000


class HitView(msgspec.Struct, frozen=True, gc=False):
    entry_id: str
    subject_name: str
    list_type: str
    list_kind: str
    list_name: str
    authority: str
    listed_on: date
    expires_on: date | None
    status: str
    document_no: str


class GradeView(msgspec.Struct, frozen=True, gc=False):
    value: str
    source: str
    as_of: date | None


class CheckResponse(msgspec.Struct, frozen=True, gc=False):
    check_id: str
    uscc: str
    matter: str
    verdict: str
    hits: list[HitView]
    grade: GradeView | None
    measures: tuple[Measure, ...]
    feedback_required: bool
    snapshot_version: int
    catalog_version: str
    checked_at: str
    degraded: bool
    matter_code: str | None = None
    case_ref: str | None = None


_encode = msgspec.json.Encoder().encode


def uscc_problem(exc: InvalidUSCC, field: str = "uscc") -> Problem:
    return Problem(
        422,
        "invalid-uscc",
        "Invalid unified social credit code",
        f"{field}: {exc.message}",
        [FieldError(field, exc.message, exc.rule)],
    )


def matter_problem(exc: UnknownMatter, field: str = "matter") -> Problem:
    return invalid(
        field,
        f"unknown matter type {exc.matter!r}; valid: {', '.join(exc.valid)}",
        "matter_type",
        kind="unknown-matter",
        title="Unknown matter type",
    )


class CheckService:
    def __init__(
        self,
        catalog: Catalog,
        snapshot: Snapshot,
        recorder: Recorder,
        metrics: Metrics | None = None,
    ) -> None:
        self.catalog = catalog
        self.snapshot = snapshot
        self.recorder = recorder
        self.metrics = metrics or Metrics()
        self.degraded = False
        self.clock = CheckClock()
        #: Codes as sent → validated and normalised (validation is deterministic).
        self._valid: dict[str, str] = {}

    def check_matter(self, matter: str) -> None:
        """Raise the 422 for an unknown matter type."""
        if matter not in self.catalog.index:
            raise matter_problem(UnknownMatter(matter, tuple(self.catalog.matter_types)))

    def prepare(
        self,
        caller: Caller,
        uscc: str,
        matter: str,
        *,
        matter_code: str | None = None,
        case_ref: str | None = None,
        commitment: bool = False,
        batch_id: str | None = None,
        started: float | None = None,
    ) -> CheckRecord:
        """Answer one check (raises :class:`Problem` for bad input); not yet recorded."""
        started = time.perf_counter() if started is None else started
        catalog = self.catalog
        if matter not in catalog.index:
            self.check_matter(matter)
        code = self._valid.get(uscc)
        if code is None:
            try:
                code = validate_uscc(uscc)
            except InvalidUSCC as exc:
                raise uscc_problem(exc) from None
            if len(self._valid) >= VALID_CODES_KEPT:
                self._valid.clear()
            self._valid[uscc] = code
        snapshot = self.snapshot
        subject = snapshot.lookup(code)
        version = snapshot.version
        ms, checked_at, today = self.clock.now()
        entries: tuple[ListEntry, ...] = ()
        grade: Grade | None = None
        if subject is not None:
            entries, grade = subject
        decision = decide(entries, grade, matter, catalog, today, commitment=commitment)
        check_id = uuid7(ms)
        hits = [self._hit_view(e) for e in decision.hits]
        self.metrics.tally.check(matter, decision.verdict, decision.hits, decision.measures)
        body = _encode(
            CheckResponse(
                check_id,
                code,
                matter,
                decision.verdict,
                hits,
                GradeView(grade.value, grade.source, grade.as_of) if grade is not None else None,
                decision.measures,
                decision.feedback_required,
                version,
                catalog.version,
                checked_at,
                self.degraded,
                matter_code and redact(matter_code),
                case_ref and redact(case_ref),
            )
        )
        return CheckRecord(
            check_id=check_id,
            caller_id=caller.caller_id,
            matter=matter,
            uscc=code,
            verdict=decision.verdict,
            hit_ids=tuple([e.entry_id for e in decision.hits]),
            measures=tuple([(m.code, m.state) for m in decision.measures]),
            snapshot_version=version,
            catalog_version=catalog.version,
            checked_at=checked_at,
            latency_us=int((time.perf_counter() - started) * 1e6),
            response=body,
            matter_code=matter_code,
            case_ref=case_ref,
            batch_id=batch_id,
        )

    def _hit_view(self, entry: ListEntry) -> HitView:
        list_type = self.catalog.list_types.get(entry.list_type)
        return HitView(
            entry.entry_id,
            redact(entry.subject_name),
            entry.list_type,
            list_type.kind if list_type else "",
            list_type.name if list_type else "",
            entry.authority,
            entry.listed_on,
            entry.expires_on,
            entry.status,
            redact(entry.document_no),
        )

    async def record(self, records: list[CheckRecord]) -> None:
        """Queue the records and wait until they are durable; a full queue or a failed
        commit is a 503 with ``Retry-After``."""
        await self.wait(self.submit(records))

    def submit(self, records: list[CheckRecord]) -> asyncio.Future[bool]:
        """Queue records (all or none) without waiting; 503 if the queue is full. The
        future resolves once every one of them is durable."""
        try:
            if len(records) == 1:
                return self.recorder.submit(records[0])
            return self.recorder.submit_many(records)
        except RecorderFull as exc:
            raise overloaded(exc.retry_after) from None

    async def wait(self, durable: asyncio.Future[bool]) -> None:
        """Wait until submitted records are durable; a failed commit is a 503."""
        try:
            await durable
        except RecorderFull as exc:
            raise overloaded(exc.retry_after) from None

    async def record_feedback(self, record: FeedbackRecord) -> bool:
        """Record feedback durably; True if it is the check's first."""
        try:
            first = await self.recorder.submit(record)
        except RecorderFull as exc:
            raise overloaded(exc.retry_after) from None
        if first:  # counted once: a retry of the same feedback is not new
            self.metrics.tally.reported(m.executed for m in record.measures)
        return first

"""The in-memory index of subjects whose entries or grade can still matter.

Each worker holds one. A check looks a subject up and reads the version it
saw in the same synchronous step, so what it records is what it used.

Three layers, consulted in this order:

1. an **overlay**, present only while a large delta is being merged;
2. the **changed** subjects: a dict of every subject changed since the base
   was packed (``None`` for one that left);
3. the **base**: :class:`~gateway.compact.CompactSubjects`, packed at start
   (about 150 bytes an entry, so ten million entries fit one worker).

Changes arrive as deltas (a subject's full new state, or its removal) tagged
with the change-log sequence number they bring the snapshot up to. A small
delta is applied at once; a large one is first published as the overlay, with
the version bumped in the same step, and then merged into the changed layer
in slices that yield to the event loop, so no delta stalls the checks being
served meanwhile. When the changed layer grows past :data:`COMPACT_AFTER`
subjects it is packed into a new base in the background, in slices too, and
swapped in one step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Final

from gateway.compact import CompactSubjects, Subject, as_checked
from gateway.compact_build import CompactBuilder
from gateway.model import EntryRecord, Grade, ListEntry

__all__ = ["COMPACT_AFTER", "SMALL_DELTA", "Snapshot", "Subject"]

log = logging.getLogger(__name__)

_MISSING: Final = object()
#: Deltas up to this many subjects are applied in one step.
SMALL_DELTA: Final = 2_000
#: Changed subjects kept as objects before they are packed into a new base.
COMPACT_AFTER: Final = 100_000
#: Records copied into a new base between two yields to the event loop.
_COPY_STEP: Final = 20_000


class Snapshot:
    """Subjects by USCC, at a version equal to the last change-log sequence applied.

    Entries carry what a check answers with (:func:`~gateway.compact.as_checked`): their
    reason, basis and source are read from the store.
    """

    #: Called with (base, version, entry count) whenever a base is packed that holds the
    #: whole state at ``version`` (after the initial build, after a compaction): to save it.
    on_packed: Callable[[CompactSubjects, int, int], None] | None = None

    def __init__(self, compact_after: int = COMPACT_AFTER) -> None:
        self._base: CompactSubjects = CompactBuilder().finish()
        self._changed: dict[str, Subject | None] = {}
        self._overlay: dict[str, Subject | None] | None = None
        self._builder: CompactBuilder | None = None
        self._compact_after = compact_after
        self._compacting: asyncio.Task[None] | None = None
        self.version = 0
        self.loaded = False
        #: Where the base came from: "store" (built) or "file" (a saved snapshot).
        self.origin = ""
        self.entry_count = 0
        self._subjects = 0
        #: The last base that held the whole state at a known version: (base, version,
        #: entry count). What a saved or shared copy of the snapshot is made from.
        self.packed: tuple[CompactSubjects, int, int] | None = None

    def __len__(self) -> int:
        return self._subjects

    def lookup(self, uscc: str) -> Subject | None:
        """The subject as of ``self.version`` (read both in one synchronous step)."""
        overlay = self._overlay
        if overlay is not None:
            found = overlay.get(uscc, _MISSING)
            if found is not _MISSING:
                return found  # type: ignore[return-value]
        found = self._changed.get(uscc, _MISSING)
        if found is not _MISSING:
            return found  # type: ignore[return-value]
        return self._base.get(uscc)

    # --- the initial build ----------------------------------------------------------

    def load_subject(self, uscc: str, entries: tuple[ListEntry, ...], grade: Grade | None) -> None:
        if self._builder is None:
            self._builder = CompactBuilder()
        self._builder.add(uscc, entries, grade)

    def load_rows(self, rows: list[EntryRecord], grades: list[tuple[str, Grade]]) -> None:
        """A chunk of the store's scan (``Store.live_rows``)."""
        if self._builder is None:
            self._builder = CompactBuilder()
        self._builder.add_rows(rows, grades)

    def load_builder(self, builder: CompactBuilder) -> None:
        """Everything at once, packed elsewhere (``gateway.snapshot_build``)."""
        self._builder = builder

    async def finish_load(self, version: int) -> None:
        """Pack what was loaded (yielding to the event loop as it goes) and serve it."""
        builder, self._builder = self._builder or CompactBuilder(), None
        builder.close_rows()
        self.use(await _pack(builder), version, builder.entry_count)
        self.loaded = True
        if self.on_packed is not None:
            self.on_packed(self._base, version, self.entry_count)

    def use(self, base: CompactSubjects, version: int, entry_count: int) -> None:
        """Serve ``base`` (built, or loaded from a file) as the state at ``version``."""
        self._base = base
        self._changed = {}
        self._subjects = len(base)
        self.entry_count = entry_count
        self.version = version
        self.packed = (base, version, entry_count)

    # --- deltas ---------------------------------------------------------------------

    async def apply(self, delta: Mapping[str, Subject | None], version: int) -> None:
        """Bring the snapshot to ``version``: each USCC gets its new state, or goes (None)."""
        if len(delta) <= SMALL_DELTA:
            self._merge(delta.items())
            self.version = version
        else:
            self._overlay = dict(delta)
            self.version = version
            items = list(self._overlay.items())
            for start in range(0, len(items), SMALL_DELTA):
                self._merge(items[start : start + SMALL_DELTA])
                await asyncio.sleep(0)
            self._overlay = None
        if len(self._changed) > self._compact_after and self._compacting is None:
            self._compacting = asyncio.create_task(self._compact(), name="snapshot-compact")

    def _current(self, uscc: str) -> Subject | None:
        found = self._changed.get(uscc, _MISSING)
        if found is not _MISSING:
            return found  # type: ignore[return-value]
        return self._base.get(uscc)

    def _merge(self, items: Iterable[tuple[str, Subject | None]]) -> None:
        changed = self._changed
        count, subjects = self.entry_count, self._subjects
        for uscc, subject in items:
            old = self._current(uscc)
            if old is not None:
                count -= len(old.entries)
                subjects -= 1
            if subject is None or (not subject.entries and subject.grade is None):
                # Kept as None (not popped) even when the base lacks it: a compaction in
                # progress may be packing the state this removes.
                changed[uscc] = None
            else:
                changed[uscc] = as_checked(subject)
                count += len(subject.entries)
                subjects += 1
        self.entry_count, self._subjects = count, subjects

    # --- compaction -----------------------------------------------------------------

    async def _compact(self) -> None:
        """Pack the base and the changed layer into a new base; swap it in one step."""
        try:
            # One synchronous step; with no large delta half-merged, the layers hold
            # exactly the state at this version.
            whole = self._overlay is None
            frozen, version, entry_count = dict(self._changed), self.version, self.entry_count
            old = self._base
            builder = old.builder()
            for copied, (key, record) in enumerate(old.items_packed(), start=1):
                if key.decode() not in frozen:
                    builder.add_packed(key, record)
                if copied % _COPY_STEP == 0:
                    await asyncio.sleep(0)
            for uscc, kept in old.odd_items():
                if uscc not in frozen:
                    builder.add(uscc, kept.entries, kept.grade)
            for uscc, latest in frozen.items():
                if latest is not None:
                    builder.add(uscc, latest.entries, latest.grade)
            packed = await _pack(builder)
            # One synchronous step: what changed meanwhile stays in the changed layer.
            self._base = packed
            self._changed = {
                uscc: subject
                for uscc, subject in self._changed.items()
                if frozen.get(uscc, _MISSING) is not subject
            }
            log.info("snapshot compacted: %d subjects packed", len(packed))
            # Not kept when not whole: holding the old base would double the memory.
            self.packed = (packed, version, entry_count) if whole else None
            if whole and self.on_packed is not None:
                self.on_packed(packed, version, entry_count)
        except Exception:  # the layers as they were keep serving
            log.exception("snapshot compaction failed")
        finally:
            self._compacting = None

    async def close(self) -> None:
        """Stop a compaction in progress (the layers as they are stay consistent)."""
        task = self._compacting
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _pack(builder: CompactBuilder) -> CompactSubjects:
    """``builder.finish()`` in steps, yielding to the event loop between them."""
    steps = builder.finishing()
    while True:
        try:
            next(steps)
        except StopIteration as done:
            packed: CompactSubjects = done.value
            return packed
        await asyncio.sleep(0)

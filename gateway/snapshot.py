"""The in-memory index of subjects whose entries or grade can still matter.

Each worker holds one. A check looks a subject up with a dict access and
reads the version it saw in the same synchronous step, so what it records is
what it used. Changes arrive as deltas (a subject's full new state, or its
removal) tagged with the change-log sequence number they bring the snapshot
up to. A small delta is applied at once; a large one is first published as an
overlay that lookups consult before the main index, with the version bumped
in the same step, and then merged into the main index in slices that yield to
the event loop, so no delta stalls the checks being served meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Final, NamedTuple

from gateway.model import Grade, ListEntry


class Subject(NamedTuple):
    entries: tuple[ListEntry, ...]
    grade: Grade | None


_MISSING: Final = object()
#: Deltas up to this many subjects are applied in one step.
SMALL_DELTA: Final = 2_000


class Snapshot:
    """Subjects by USCC, at a version equal to the last change-log sequence applied."""

    def __init__(self) -> None:
        self._main: dict[str, Subject] = {}
        self._overlay: dict[str, Subject | None] | None = None
        self.version = 0
        self.loaded = False
        self.entry_count = 0

    def __len__(self) -> int:
        return len(self._main)

    def lookup(self, uscc: str) -> Subject | None:
        """The subject as of ``self.version`` (read both in one synchronous step)."""
        overlay = self._overlay
        if overlay is not None:
            found = overlay.get(uscc, _MISSING)
            if found is not _MISSING:
                return found  # type: ignore[return-value]
        return self._main.get(uscc)

    def load(self, subjects: Mapping[str, Subject]) -> None:
        """Add subjects during the initial build (before any delta)."""
        self._main.update(subjects)
        self.entry_count += sum(len(s.entries) for s in subjects.values())

    def finish_load(self, version: int) -> None:
        self.version = version
        self.loaded = True

    async def apply(self, delta: Mapping[str, Subject | None], version: int) -> None:
        """Bring the snapshot to ``version``: each USCC gets its new state, or goes (None)."""
        if len(delta) <= SMALL_DELTA:
            self._merge(delta.items())
            self.version = version
            return
        self._overlay = dict(delta)
        self.version = version
        items = list(self._overlay.items())
        for start in range(0, len(items), SMALL_DELTA):
            self._merge(items[start : start + SMALL_DELTA])
            await asyncio.sleep(0)
        self._overlay = None

    def _merge(self, items: Iterable[tuple[str, Subject | None]]) -> None:
        main = self._main
        count = self.entry_count
        for uscc, subject in items:
            old = main.get(uscc)
            if old is not None:
                count -= len(old.entries)
            if subject is None or (not subject.entries and subject.grade is None):
                main.pop(uscc, None)
            else:
                main[uscc] = subject
                count += len(subject.entries)
        self.entry_count = count

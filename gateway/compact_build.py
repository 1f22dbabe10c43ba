"""Packing subjects for :class:`~gateway.compact.CompactSubjects`: :class:`CompactBuilder`.

The builder collects subjects in any order (``ListEntry`` objects, the store's
raw records, or the rows of its scan, grouped by code as they come), packs each
into a msgpack record (repeated strings as indexes into one table of strings,
entry ids of 32 hex digits as 16 bytes), and :meth:`CompactBuilder.finish`
places the codes in the hash table that :class:`~gateway.compact.CompactSubjects`
probes (see :mod:`gateway.compact` for the layout).

A build in parts (:mod:`gateway.snapshot_build`) has each part's builder give
string indexes apart from the others' (:func:`merged_strings`), then appends the
parts' arrays in order into one builder.
"""

from __future__ import annotations

import zlib
from array import array
from collections import deque
from collections.abc import Callable, Generator, Iterable
from datetime import date
from operator import itemgetter
from typing import Final

import msgspec

from gateway.compact import (
    _GOLDEN,
    KEY_BYTES,
    CompactSubjects,
    Subject,
    _entry,
    _record,
    as_checked,
)
from gateway.model import EntryRecord, Grade, ListEntry

#: A subject's entries in a record: by listed date, then entry id.
_LISTED_ORDER: Final = itemgetter(4, 1)
_encode: Final = msgspec.msgpack.Encoder().encode


def _ordinal(day: date | None) -> int:
    """A date as its proleptic ordinal (from 1); 0 for none."""
    return 0 if day is None else day.toordinal()


def _packed_id(entry_id: str) -> bytes | str:
    """A 32-hex-digit id (lower case, as the store makes them) as 16 bytes; anything else
    as it is, so that every id reads back the same."""
    if len(entry_id) == 32:
        try:
            packed = bytes.fromhex(entry_id)
        except ValueError:
            return entry_id
        if packed.hex() == entry_id:
            return packed
    return entry_id


class _Strings:
    """Strings stored once each, referred to by index (append-only).

    ``start`` and ``stride``: the indexes one of ``stride`` builders of a build in parts
    gives (``start``, ``start + stride``, ...), apart from every other's, so that their
    records keep their indexes in the merged table (:func:`merged_strings`)."""

    def __init__(self, values: list[str] | None = None, *, start: int = 0, stride: int = 1) -> None:
        self.values: list[str] = list(values or [])
        #: Index of each string stored (read directly on hot paths).
        self.known = {value: i for i, value in enumerate(self.values)}
        self._next = len(self.values) if stride == 1 else start
        self._stride = stride

    def index(self, value: str) -> int:
        found = self.known.get(value)
        if found is None:
            found = self.known[value] = self._next
            self._next += self._stride
            if found >= len(self.values):
                self.values.extend([""] * (found + 1 - len(self.values)))
            self.values[found] = value
        return found


def merged_strings(parts: list[list[str]]) -> list[str]:
    """The strings of the builders of a build in parts, part ``k`` of ``n`` having given
    the indexes ``k``, ``k + n``, ... (a place no part used holds "").

    >>> merged_strings([["a", "", "c"], ["", "b", "", "d"]])
    ['a', 'b', 'c', 'd']
    """
    merged = [""] * max((len(values) for values in parts), default=0)
    for start, values in enumerate(parts):
        for index in range(start, len(values), len(parts)):
            merged[index] = values[index]
    return merged


class CompactBuilder:
    """Collects subjects (any order), then :meth:`finish` packs them. Codes that are not
    18 ASCII characters (never a valid USCC, but the store does not refuse them) are kept
    in a small dict beside the table."""

    def __init__(self, strings: _Strings | None = None) -> None:
        self._keys = bytearray()
        self._payload = bytearray()
        self._offsets = array("Q", [0])
        self._strings = strings or _Strings()
        self._odd: dict[str, Subject] = {}
        self.entry_count = 0
        #: The subject :meth:`add_rows` is collecting, and grades it has not placed yet.
        self._open: tuple[str, list[EntryRecord]] = ("", [])
        self._pending_grades: deque[tuple[str, Grade]] = deque()

    def add(self, uscc: str, entries: tuple[ListEntry, ...], grade: Grade | None) -> None:
        if not entries and grade is None:
            return
        key = uscc.encode()
        if len(key) != KEY_BYTES or len(uscc) != KEY_BYTES:
            self._odd[uscc] = as_checked(Subject(entries, grade))
            self.entry_count += len(entries)
            return
        self.add_packed(key, self.pack(entries, grade))
        self.entry_count += len(entries)

    def add_packed(self, key: bytes, record: bytes) -> None:
        """A record packed by this builder's strings (or those it inherited)."""
        self._keys += key
        self._payload += record
        self._offsets.append(len(self._payload))

    def add_records(self, uscc: str, records: list[EntryRecord], grade: Grade | None) -> None:
        """As :meth:`add`, from the store's raw records (no ``ListEntry`` made)."""
        key = uscc.encode()
        if len(key) != KEY_BYTES or len(uscc) != KEY_BYTES:
            self.add(uscc, tuple(_entry(uscc, record) for record in records), grade)
        elif records or grade is not None:
            self.add_packed(key, self.pack_records(records, grade))
            self.entry_count += len(records)

    def add_rows(self, rows: Iterable[EntryRecord], grades: Iterable[tuple[str, Grade]]) -> None:
        """Subjects from the store's scan (:func:`gateway.store.live.stream_rows`): entry
        records ordered by code (a subject's may continue in the next call) and the
        ``(code, grade)`` pairs of codes up to the last one, ordered too. Call
        :meth:`close_rows` after the last chunk. Grouping and packing are one loop: the
        initial build of ten million entries spends most of its Python time here."""
        pending = self._pending_grades
        pending.extend(grades)
        current, records = self._open
        for row in rows:
            uscc = row[0]
            if uscc == current:
                records.append(row)
                continue
            if records:
                self._close_subject(current, records)
            current, records = uscc, [row]
        self._open = (current, records)

    def close_rows(self) -> None:
        """The last subject of :meth:`add_rows`, and the grades left (graded codes with no
        live entry)."""
        current, records = self._open
        if records:
            self._close_subject(current, records)
        self._open = ("", [])
        pending = self._pending_grades
        while pending:
            code, grade = pending.popleft()
            self.add_records(code, [], grade)

    def _close_subject(self, uscc: str, records: list[EntryRecord]) -> None:
        pending, grade = self._pending_grades, None
        while pending and pending[0][0] < uscc:  # graded, nothing listed
            code, only = pending.popleft()
            self.add_records(code, [], only)
        if pending and pending[0][0] == uscc:
            grade = pending.popleft()[1]
        if len(records) > 1:
            records.sort(key=_LISTED_ORDER)
        key = uscc.encode()
        if len(key) != KEY_BYTES or len(uscc) != KEY_BYTES:
            self.add_records(uscc, records, grade)
            return
        self._keys += key
        self._payload += self.pack_records(records, grade)
        self._offsets.append(len(self._payload))
        self.entry_count += len(records)

    # --- a build in parts (gateway.snapshot_build) ------------------------------------

    @property
    def strings(self) -> list[str]:
        return self._strings.values

    def use_strings(self, values: list[str]) -> None:
        """The strings the records appended by :meth:`append_part` refer to (merged)."""
        self._strings = _Strings(values)

    def part(self) -> tuple[bytearray, array[int], bytearray, dict[str, Subject]]:
        """What :meth:`close_rows` left: keys, offsets (from 0), payload, odd subjects."""
        return self._keys, self._offsets, self._payload, self._odd

    def append_part(
        self,
        read: Callable[[int], bytes],
        sizes: tuple[int, int, int],
        odd: Iterable[tuple[str, Subject]],
        entry_count: int,
    ) -> None:
        """Add the subjects of a part built by another builder (its strings given apart,
        see :meth:`use_strings`), codes above all added so far: its keys, offsets and
        payload (``sizes`` bytes each) as ``read`` gives them, read a few MiB at a time
        into this builder's own arrays."""
        keys_size, offsets_size, payload_size = sizes
        _read_into(self._keys, read, keys_size)
        offsets = array("Q")
        raw = bytearray()
        _read_into(raw, read, offsets_size)
        offsets.frombytes(raw)
        del raw
        base = len(self._payload)
        for start in range(1, len(offsets), _STEP):
            self._offsets.extend([offset + base for offset in offsets[start : start + _STEP]])
        del offsets
        _read_into(self._payload, read, payload_size)
        self._odd.update(odd)
        self.entry_count += entry_count

    def pack(self, entries: tuple[ListEntry, ...], grade: Grade | None) -> bytes:
        return self.pack_records([_record(e) for e in entries], grade)

    def pack_records(self, records: list[EntryRecord], grade: Grade | None) -> bytes:
        strings = self._strings
        known = strings.known
        packed = []
        for (
            _,
            entry_id,
            list_type,
            status,
            listed_on,
            expires_on,
            subject_name,
            authority,
            document_no,
        ) in records:
            type_index = known.get(list_type)
            if type_index is None:
                type_index = strings.index(list_type)
            status_index = known.get(status)
            if status_index is None:
                status_index = strings.index(status)
            authority_index = known.get(authority)
            if authority_index is None:
                authority_index = strings.index(authority)
            packed.append(
                (
                    _packed_id(entry_id) if len(entry_id) == 32 else entry_id,
                    type_index,
                    status_index,
                    listed_on,
                    expires_on or 0,
                    subject_name,
                    authority_index,
                    document_no,
                )
            )
        if grade is None:
            return _encode((packed, None))
        return _encode((packed, (grade.value, grade.source, _ordinal(grade.as_of))))

    def finish(self) -> CompactSubjects:
        """Pack what was added (see :meth:`finishing` to do it in steps)."""
        steps = self.finishing()
        while True:
            try:
                next(steps)
            except StopIteration as done:
                result: CompactSubjects = done.value
                return result

    def finishing(self, step: int = 100_000) -> Generator[None, None, CompactSubjects]:
        """Pack what was added, pausing (yielding) every ``step`` codes: an event loop
        can serve between steps. Returns the :class:`CompactSubjects`."""
        count = len(self._offsets) - 1
        size = 8
        while size * 2 < count * 3:  # at most two thirds full
            size *= 2
        table = array("I", bytes(4 * size))
        mask = size - 1
        crc32 = zlib.crc32
        # _slot_hash(key) & mask (gateway.compact), inlined on a view of the key (no copy): ten
        # million keys are placed in this loop at every build from the store (1.4 → 0.8 s a
        # 2,000,000).
        with memoryview(self._keys) as keys:  # released even if the steps are abandoned
            for start in range(0, count, step):
                for i in range(start, min(start + step, count)):
                    at = i * KEY_BYTES
                    slot = crc32(keys[at : at + KEY_BYTES]) * _GOLDEN & mask
                    while table[slot]:
                        slot = (slot + 1) & mask
                    table[slot] = i + 1
                yield
        return CompactSubjects(
            table, self._keys, self._payload, self._offsets, self._strings, self._odd
        )


_STEP: Final = 1 << 16
_CHUNK: Final = 1 << 22


def _read_into(target: bytearray, read: Callable[[int], bytes], size: int) -> None:
    """Append ``size`` bytes from ``read`` to ``target``, 4 MiB at a time (no copy of all)."""
    while size > 0:
        chunk = read(min(size, _CHUNK))
        if not chunk:
            raise EOFError(f"{size} bytes missing")
        target += chunk
        size -= len(chunk)

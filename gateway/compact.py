"""Subjects packed for millions of entries: one hash table, one key blob, one payload blob.

A dict of ``ListEntry`` objects costs about a kilobyte per entry: ten million
entries would not fit a worker. :class:`CompactSubjects` keeps each subject as
a short msgpack record in one ``bytearray`` (about 100 bytes an entry), its
code in another (18 bytes), and finds it through an open-addressing table of
32-bit slots (``array``, linear probing, at most two thirds full), so that
Python allocates a handful of objects whatever the number of subjects. A
lookup hashes the code (CRC-32, the same in every process), probes the table,
and decodes the record of a hit into the ``ListEntry`` objects the engine
reads: about 1 µs for a miss, 3-5 µs for a hit.

A record carries what a check answers with (entry id, list type, status,
dates, subject name, authority, document number, and the grade), not the
entry's reason, basis or source, which stay in the store. Repeated strings
(list types, statuses, authorities) are stored once, as indexes.

>>> from datetime import date
>>> from gateway.model import ListEntry
>>> builder = CompactBuilder()
>>> entry = ListEntry(entry_id="0192f3a4b5c67d8e9f00112233445566", uscc="91350100M000100Y43",
...     list_type="court_defaulter", listed_on=date(2026, 3, 1), authority="福州市中级人民法院")
>>> builder.add("91350100M000100Y43", (entry,), None)
>>> subjects = builder.finish()
>>> len(subjects), builder.entry_count, subjects.get("91110000600037341L")
(1, 1, None)
>>> found = subjects.get("91350100M000100Y43")
>>> found.entries[0].authority, found.entries[0].entry_id == entry.entry_id
('福州市中级人民法院', True)
"""

from __future__ import annotations

import zlib
from array import array
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from datetime import date
from operator import itemgetter
from typing import Final, NamedTuple

import msgspec

from gateway.model import EntryRecord, Grade, ListEntry

KEY_BYTES: Final = 18
#: A subject's entries in a record: by listed date, then entry id.
_LISTED_ORDER: Final = itemgetter(4, 1)
_encode: Final = msgspec.msgpack.Encoder().encode
_decode: Final = msgspec.msgpack.Decoder().decode


class Subject(NamedTuple):
    entries: tuple[ListEntry, ...]
    grade: Grade | None


def as_checked(subject: Subject) -> Subject:
    """``subject`` with only what a record keeps (the fields a check answers with), so that
    every layer of a snapshot answers alike.

    >>> from datetime import date
    >>> e = ListEntry(entry_id="e1", uscc="U", list_type="focus", listed_on=date(2026, 1, 1),
    ...     reason="有履行能力而拒不履行", source="court", source_id="C-1")
    >>> as_checked(Subject((e,), None)).entries[0].reason
    ''
    """
    return Subject(tuple([_entry(e.uscc, _record(e)) for e in subject.entries]), subject.grade)


#: Subjects a base keeps decoded (with the codes found absent) before it starts afresh:
#: at most a few tens of MB, next to the 1.3 GB of ten million entries.
RECENT_KEPT: Final = 50_000
_MISSING: Final = object()

#: Fibonacci hashing's multiplier: spreads CRC-32's values over the table's slots.
_GOLDEN: Final = 0x9E3779B1


def _slot_hash(key: bytes) -> int:
    """A 32-bit hash of a code, the same in every process (unlike ``hash``)."""
    return (zlib.crc32(key) * _GOLDEN) & 0xFFFF_FFFF


def _ordinal(day: date | None) -> int:
    """A date as its proleptic ordinal (from 1); 0 for none."""
    return 0 if day is None else day.toordinal()


def _day(ordinal: int) -> date | None:
    return None if ordinal == 0 else date.fromordinal(ordinal)


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


def _record(entry: ListEntry) -> EntryRecord:
    """What a packed record keeps of ``entry``, as the store's raw record."""
    return (
        entry.uscc,
        entry.entry_id,
        entry.list_type,
        entry.status,
        entry.listed_on.toordinal(),
        None if entry.expires_on is None else entry.expires_on.toordinal(),
        entry.subject_name,
        entry.authority,
        entry.document_no,
    )


def _entry(uscc: str, record: EntryRecord) -> ListEntry:
    _, entry_id, list_type, status, listed_on, expires_on, subject_name, authority, document_no = (
        record
    )
    return ListEntry(
        entry_id=entry_id,
        uscc=uscc,
        list_type=list_type,
        status=status,  # type: ignore[arg-type]
        listed_on=date.fromordinal(listed_on),
        expires_on=_day(expires_on or 0),
        subject_name=subject_name,
        authority=authority,
        document_no=document_no,
    )


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
        # _slot_hash(key) & mask, inlined on a view of the key (no copy): ten million keys
        # are placed in this loop at every build from the store (1.4 → 0.8 s a 2,000,000).
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


class CompactSubjects:
    """A read-only map from USCC to :class:`Subject`, packed (see the module docstring)."""

    def __init__(
        self,
        table: array[int],
        keys: bytearray,
        payload: bytearray,
        offsets: array[int],
        strings: _Strings,
        odd: dict[str, Subject],
    ) -> None:
        """The arrays are built by :class:`CompactBuilder`, or read from a file
        (:mod:`gateway.snapshot_file`): ``table`` of 32-bit slots, ``offsets`` of 64-bit."""
        self._table = table
        self._mask = len(table) - 1
        self._keys = keys
        self._payload = payload
        self._offsets = offsets
        self._strings = strings
        self._odd = odd
        #: Codes looked up lately → their subject (None: not here), so that a code checked
        #: again costs a dict lookup, not a probe and a decoding; emptied when full. The
        #: base never changes, so nothing in it goes stale.
        self._recent: dict[str, Subject | None] = {}

    def __len__(self) -> int:
        return len(self._offsets) - 1 + len(self._odd)

    def _find(self, key: bytes) -> int:
        """The record number of ``key``, or -1."""
        table, keys, mask = self._table, self._keys, self._mask
        slot = _slot_hash(key) & mask
        while True:
            found = table[slot]
            if not found:
                return -1
            start = (found - 1) * KEY_BYTES
            if keys[start : start + KEY_BYTES] == key:
                return found - 1
            slot = (slot + 1) & mask

    def get(self, uscc: str) -> Subject | None:
        recent = self._recent
        found = recent.get(uscc, _MISSING)
        if found is not _MISSING:
            return found  # type: ignore[return-value]
        if len(uscc) != KEY_BYTES:
            return self._odd.get(uscc)
        key = uscc.encode()
        if len(key) != KEY_BYTES:
            return self._odd.get(uscc)
        number = self._find(key)
        subject = None if number < 0 else self._unpack(uscc, self._record(number))
        if len(recent) >= RECENT_KEPT:
            recent.clear()
        recent[uscc] = subject
        return subject

    def __contains__(self, uscc: object) -> bool:
        if not isinstance(uscc, str):
            return False
        key = uscc.encode()
        if len(key) != KEY_BYTES or len(uscc) != KEY_BYTES:
            return uscc in self._odd
        return self._find(key) >= 0

    def _record(self, number: int) -> bytes:
        return bytes(self._payload[self._offsets[number] : self._offsets[number + 1]])

    def _unpack(self, uscc: str, record: bytes) -> Subject:
        packed_entries, packed_grade = _decode(record)
        strings = self._strings.values
        entries = tuple(
            [
                ListEntry(
                    entry_id=entry_id.hex() if type(entry_id) is bytes else entry_id,
                    uscc=uscc,
                    list_type=strings[list_type],
                    status=strings[status],
                    listed_on=date.fromordinal(listed_on),
                    expires_on=_day(expires_on),
                    subject_name=subject_name,
                    authority=strings[authority],
                    document_no=document_no,
                )
                for (
                    entry_id,
                    list_type,
                    status,
                    listed_on,
                    expires_on,
                    subject_name,
                    authority,
                    document_no,
                ) in packed_entries
            ]
        )
        grade = None
        if packed_grade is not None:
            value, source, as_of = packed_grade
            grade = Grade(value, source, _day(as_of))
        return Subject(entries, grade)

    def items_packed(self) -> Iterator[tuple[bytes, bytes]]:
        """Every packed subject as (code, record), for a rebuild that copies records
        without decoding them."""
        keys = self._keys
        for number in range(len(self._offsets) - 1):
            yield bytes(keys[number * KEY_BYTES : (number + 1) * KEY_BYTES]), self._record(number)

    def odd_items(self) -> Iterator[tuple[str, Subject]]:
        yield from self._odd.items()

    def builder(self) -> CompactBuilder:
        """A new builder sharing these strings, so that records copy over as they are."""
        return CompactBuilder(self._strings)

    def arrays(self) -> tuple[array[int], bytearray, array[int], bytearray]:
        """The table, keys, offsets and payload, for saving."""
        return self._table, self._keys, self._offsets, self._payload

    def strings(self) -> list[str]:
        return list(self._strings.values)

    def odd_packed(self) -> list[tuple[str, bytes]]:
        """The subjects kept beside the table, packed, for saving."""
        builder = self.builder()
        return [(uscc, builder.pack(s.entries, s.grade)) for uscc, s in self._odd.items()]

    def add_odd_packed(self, odd: list[tuple[str, bytes]]) -> None:
        """Subjects saved by :meth:`odd_packed` (with these strings), when loading."""
        for uscc, record in odd:
            self._odd[uscc] = self._unpack(uscc, record)

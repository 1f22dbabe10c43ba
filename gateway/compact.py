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

This module reads the packed subjects; :mod:`gateway.compact_build` packs them
(:class:`~gateway.compact_build.CompactBuilder`).

>>> from datetime import date
>>> from gateway.compact_build import CompactBuilder
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
from collections.abc import Iterator
from datetime import date
from typing import TYPE_CHECKING, Final, NamedTuple

import msgspec

from gateway.model import EntryRecord, Grade, ListEntry

if TYPE_CHECKING:
    from gateway.compact_build import CompactBuilder, _Strings

KEY_BYTES: Final = 18
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


def _day(ordinal: int) -> date | None:
    return None if ordinal == 0 else date.fromordinal(ordinal)


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
        from gateway.compact_build import CompactBuilder  # it imports this module

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

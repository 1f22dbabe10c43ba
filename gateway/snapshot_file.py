"""A packed snapshot saved to a file, so that a worker starts in seconds, not minutes.

Building the snapshot of ten million entries from the store takes one to two minutes.
The first worker to build it saves it next to the store (``<db>.snapshot``); the next
ones, and every restart, read that file (about a second for ten million entries) and
catch up from the change log from the version it was saved at.

The file is read into the worker's own memory rather than mapped: mapped pages belong to
the page cache, which the kernel may reclaim when they have not been touched for a
while, and a check must never wait for a page to come back from disk.

The file holds a small header (msgpack) and the packed arrays, 8-byte aligned::

    b"GWSNAP1\\n" | header length (8 bytes, little-endian) | header | table | keys |
    offsets | payload

The header names the change-log sequence the snapshot is at and that change's
timestamp (the *fingerprint*): a file saved from another store, or from this one
before it was restored from a backup, does not match the change log and is not used.
Files are written to a temporary name and renamed, so a reader never sees half a
file.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from array import array
from pathlib import Path
from typing import BinaryIO, Final

import msgspec

from gateway.compact import CompactSubjects
from gateway.compact_build import _Strings

MAGIC: Final = b"GWSNAP1\n"
_ALIGN: Final = 8


class Header(msgspec.Struct, frozen=True):
    version: int
    fingerprint: str
    entry_count: int
    byteorder: str
    strings: list[str]
    #: Subjects whose code is not 18 ASCII characters: (uscc, packed record).
    odd: list[tuple[str, bytes]]
    #: Byte lengths of the table, keys, offsets and payload.
    sizes: tuple[int, int, int, int]


class Saved(msgspec.Struct, frozen=True):
    subjects: CompactSubjects
    version: int
    fingerprint: str
    entry_count: int


def _padding(length: int) -> bytes:
    return b"\0" * (-length % _ALIGN)


def save(
    path: Path, subjects: CompactSubjects, version: int, fingerprint: str, entry_count: int
) -> None:
    """Write ``subjects`` to ``path`` atomically (a temporary file, fsync, rename)."""
    handle, name = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            write_to(out, subjects, version, fingerprint, entry_count)
            out.flush()
            os.fsync(out.fileno())
        os.replace(name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        raise


def write_to(
    out: BinaryIO, subjects: CompactSubjects, version: int, fingerprint: str, entry_count: int
) -> None:
    """Write ``subjects`` in this format to ``out`` (a file, or Redis's chunks)."""
    table, keys, offsets, payload = subjects.arrays()
    parts: list[memoryview] = [
        memoryview(table).cast("B"),
        memoryview(keys),
        memoryview(offsets).cast("B"),
        memoryview(payload),
    ]
    header = msgspec.msgpack.encode(
        Header(
            version,
            fingerprint,
            entry_count,
            sys.byteorder,
            subjects.strings(),
            subjects.odd_packed(),
            (parts[0].nbytes, parts[1].nbytes, parts[2].nbytes, parts[3].nbytes),
        )
    )
    out.write(MAGIC)
    out.write(len(header).to_bytes(8, "little"))
    out.write(header)
    out.write(_padding(len(MAGIC) + 8 + len(header)))
    for part in parts:
        out.write(part)
        out.write(_padding(part.nbytes))


def load(path: Path) -> Saved | None:
    """Read the snapshot saved at ``path`` into this process's memory; None if there is
    none or it cannot be used (another format, another byte order, truncated)."""
    try:
        with path.open("rb") as source:
            return read_from(source)
    except FileNotFoundError:
        return None


def read_from(source: io.BufferedIOBase) -> Saved | None:
    """Read a snapshot written by :func:`write_to`; None if it cannot be used."""
    if source.read(len(MAGIC)) != MAGIC:
        return None
    length = int.from_bytes(source.read(8), "little")
    try:
        header = msgspec.msgpack.decode(source.read(length), type=Header)
    except (msgspec.DecodeError, ValueError):
        return None
    if header.byteorder != sys.byteorder:
        return None
    source.read(-(len(MAGIC) + 8 + length) % _ALIGN)
    table_size, keys_size, offsets_size, payload_size = header.sizes
    if table_size % 4 or offsets_size % 8:
        return None
    # Each array is allocated once and read into: no second copy of a gigabyte.
    table = array("I", bytes(table_size))
    keys = bytearray(keys_size)
    offsets = array("Q", bytes(offsets_size))
    payload = bytearray(payload_size)
    for part in (memoryview(table).cast("B"), keys, memoryview(offsets).cast("B"), payload):
        if source.readinto(part) != len(part):
            return None  # truncated
        source.read(-len(part) % _ALIGN)
    subjects = CompactSubjects(table, keys, payload, offsets, _Strings(header.strings), {})
    subjects.add_odd_packed(header.odd)
    return Saved(subjects, header.version, header.fingerprint, header.entry_count)

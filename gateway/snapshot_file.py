"""A packed snapshot saved to a file, so that a worker starts in seconds, not minutes.

Building the snapshot of ten million entries from the store takes about a minute of
CPU. The first worker to build it saves it next to the store (``<db>.snapshot``); the
next ones, and every restart, map that file (``mmap``, read-only) and catch up from the
change log from the version it was saved at. The mapped pages are the operating
system's page cache: the workers of a node share one copy of them.

The file holds a small header (msgpack) and the packed arrays, 8-byte aligned::

    b"GWSNAP1\\n" | header length (8 bytes, little-endian) | header | table | keys |
    offsets | payload

The header names the change-log sequence the snapshot is at and that change's
timestamp (the *fingerprint*): a file saved from another store, or from this one
before it was restored from a backup, does not match the change log and is not used.
Files are written to a temporary name and renamed, so a reader never sees half a
file, and a mapping of the previous file stays valid.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import sys
import tempfile
from pathlib import Path
from typing import Final

import msgspec

from gateway.compact import CompactSubjects, _Strings

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
    table, keys, offsets, payload = subjects.arrays()
    parts = [memoryview(table).cast("B"), keys, memoryview(offsets).cast("B"), payload]
    header = msgspec.msgpack.encode(
        Header(
            version,
            fingerprint,
            entry_count,
            sys.byteorder,
            subjects.strings(),
            subjects.odd_packed(),
            (len(parts[0]), len(keys), len(parts[2]), len(payload)),
        )
    )
    handle, name = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(MAGIC)
            out.write(len(header).to_bytes(8, "little"))
            out.write(header)
            out.write(_padding(len(MAGIC) + 8 + len(header)))
            for part in parts:
                out.write(part)
                out.write(_padding(len(part)))
            out.flush()
            os.fsync(out.fileno())
        os.replace(name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        raise


def load(path: Path) -> Saved | None:
    """Map the snapshot saved at ``path``; None if there is none or it cannot be used
    (another format, another byte order, truncated)."""
    try:
        with path.open("rb") as source:
            mapped = mmap.mmap(source.fileno(), 0, access=mmap.ACCESS_READ)
    except (FileNotFoundError, ValueError):  # ValueError: an empty file
        return None
    view = memoryview(mapped)
    try:
        if bytes(view[: len(MAGIC)]) != MAGIC:
            return None
        length = int.from_bytes(view[len(MAGIC) : len(MAGIC) + 8], "little")
        start = len(MAGIC) + 8
        header = msgspec.msgpack.decode(view[start : start + length], type=Header)
        if header.byteorder != sys.byteorder:
            return None
        position = start + length
        position += -position % _ALIGN
        parts = []
        for size in header.sizes:
            if position + size > len(view):
                return None
            parts.append(view[position : position + size])
            position += size + (-size % _ALIGN)
    except (msgspec.DecodeError, ValueError):
        return None
    table, keys, offsets, payload = parts
    strings = _Strings(header.strings)
    subjects = CompactSubjects(
        table.cast("I"),
        keys,
        payload,
        offsets.cast("Q"),
        strings,
        {},
    )
    subjects.add_odd_packed(header.odd)
    return Saved(subjects, header.version, header.fingerprint, header.entry_count)

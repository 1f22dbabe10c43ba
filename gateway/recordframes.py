"""The record log's frames: how records are laid out in a slot, and read back after a crash.

A frame is a header — ``GWRL``, its number (ever increasing in its slot), the highest
number whose records were durable in the store when it was written ("covered"), the
length of its records, a CRC-32 of all of these and the records — then the records
(msgpack), padded to whole 4 KiB blocks. See :mod:`gateway.recordlog` for how frames are
written and when they may be written over.
"""

from __future__ import annotations

import errno
import mmap
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Final

import msgspec

from gateway.model import CheckRecord, FeedbackRecord

#: Frames start and end on this boundary (the alignment ``O_DIRECT`` asks for).
BLOCK: Final = 4096
MAGIC: Final = b"GWRL"
#: magic, number, highest number covered, length of the records, CRC-32 of what follows
#: the magic (but the CRC) and of the records.
_HEADER: Final = struct.Struct("<4sQQII")
_CRC_FROM: Final = 4
HEADER_SIZE: Final = _HEADER.size
_CRC: Final = struct.Struct("<I")


class Frame(msgspec.Struct, array_like=True, gc=False):
    checks: list[CheckRecord] = msgspec.field(default_factory=list)
    feedback: list[FeedbackRecord] = msgspec.field(default_factory=list)


encode: Final = msgspec.msgpack.Encoder().encode
_decode: Final = msgspec.msgpack.Decoder(Frame).decode
EMPTY: Final = encode(Frame())

Restore = Callable[[list[CheckRecord], list[FeedbackRecord]], None]


def padded(size: int) -> int:
    """``size`` rounded up to whole blocks.

    >>> padded(1), padded(4096), padded(4097)
    (4096, 4096, 8192)
    """
    return -(-size // BLOCK) * BLOCK


def frame_into(buffer: bytearray | mmap.mmap, number: int, covered: int, records: bytes) -> int:
    """Lay a frame's header and records out at the start of ``buffer``; its length (not
    padded). The records are copied once, the header packed in place."""
    end = HEADER_SIZE + len(records)
    _HEADER.pack_into(buffer, 0, MAGIC, number, covered, len(records), 0)
    buffer[HEADER_SIZE:end] = records
    with memoryview(buffer) as view:
        crc = zlib.crc32(view[HEADER_SIZE:end], zlib.crc32(view[_CRC_FROM : HEADER_SIZE - 4]))
    _CRC.pack_into(buffer, HEADER_SIZE - 4, crc)
    return end


def whole_frames(data: bytes) -> list[tuple[int, int, memoryview]]:
    """(number, covered, records) of every whole frame of ``data``, in file order."""
    found: list[tuple[int, int, memoryview]] = []
    view = memoryview(data)
    offset = 0
    while offset + _HEADER.size <= len(data):
        magic, number, covered, length, crc = _HEADER.unpack_from(data, offset)
        end = offset + _HEADER.size + length
        if magic == MAGIC and end <= len(data):
            fields = view[offset + _CRC_FROM : offset + _HEADER.size - 4]
            records = view[offset + _HEADER.size : end]
            if zlib.crc32(records, zlib.crc32(fields)) == crc:
                found.append((number, covered, records))
                offset = padded(end)
                continue
        offset += BLOCK
    return found


def uncovered_frames(data: bytes) -> tuple[list[Frame], int]:
    """The frames of ``data`` not covered by the highest "covered" of its whole frames, in
    order of number; and the highest number found (0 if none).

    >>> def frame(n, covered):
    ...     block = bytearray(BLOCK); frame_into(block, n, covered, EMPTY); return bytes(block)
    >>> frames, last = uncovered_frames(frame(7, 5) + frame(5, 4) + frame(6, 5) + b"\\0" * 9)
    >>> len(frames), last  # 6 and 7: 5 is covered by 7's "covered"
    (2, 7)
    """
    found = whole_frames(data)
    covered_up_to = max((covered for _, covered, _ in found), default=0)
    last = max((number for number, _, _ in found), default=0)
    uncovered = sorted((item for item in found if item[0] > covered_up_to), key=lambda i: i[0])
    return [decode_frame(records) for _, _, records in uncovered], last


def decode_frame(records: memoryview | bytes) -> Frame:
    """A frame's records (whole: its CRC held)."""
    return _decode(records)


def recover(path: Path, restore: Restore) -> tuple[int, int]:
    """Give the store every record of ``path`` it may not hold durably; (how many records,
    the highest frame number in the file)."""
    frames, last = uncovered_frames(path.read_bytes())
    checks = [c for frame in frames for c in frame.checks]
    feedback = [f for frame in frames for f in frame.feedback]
    if checks or feedback:
        restore(checks, feedback)
    return len(checks) + len(feedback), last


def directory_for(db: str | Path) -> Path:
    """Where the record logs of the workers on the SQLite file ``db`` are (``<db>.records``)."""
    return Path(f"{db}.records")


def unrecovered(directory: Path) -> int:
    """Records the slots of ``directory`` hold that the store may not (0 once every worker
    closed its slot, or recovered it at its start)."""
    if not directory.is_dir():
        return 0
    total = 0
    for slot in sorted(directory.glob("slot-*.log")):
        frames, _ = uncovered_frames(slot.read_bytes())
        total += sum(len(frame.checks) + len(frame.feedback) for frame in frames)
    return total


def open_direct(path: Path) -> int:
    """``path`` opened for frames: ``O_DSYNC``, and ``O_DIRECT`` where the file system allows."""
    flags = os.O_RDWR | os.O_CREAT | os.O_DSYNC
    try:
        return os.open(path, flags | os.O_DIRECT, 0o600)
    except OSError as exc:  # tmpfs and some others refuse O_DIRECT: O_DSYNC alone
        if exc.errno != errno.EINVAL:
            raise
        return os.open(path, flags, 0o600)


def write_frame(
    fd: int, buffer: mmap.mmap, offset: int, number: int, covered: int, records: bytes, size: int
) -> None:
    """Lay the frame out in ``buffer`` (page-aligned, at least ``size`` bytes) and write its
    ``size`` bytes (whole blocks) at ``offset`` of ``fd``."""
    frame_into(buffer, number, covered, records)
    with memoryview(buffer) as view:
        written = 0
        while written < size:
            done = os.pwrite(fd, view[written:size], offset + written)
            if done <= 0:
                raise OSError(errno.EIO, f"wrote {written} of a frame's {size} bytes")
            written += done


def write_marker(path: Path, number: int) -> None:
    """Write a marker frame covering ``number`` at the start of ``path`` (a recovered slot)."""
    fd = open_direct(path)
    buffer = mmap.mmap(-1, BLOCK)
    try:
        write_frame(fd, buffer, 0, number, number, EMPTY, BLOCK)
    finally:
        buffer.close()
        os.close(fd)

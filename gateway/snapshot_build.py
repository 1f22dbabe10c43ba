"""The snapshot's first build from a SQLite store, in several processes side by side.

Built by the worker alone, ten million entries took 49 s on a fast boot and 85 s on a
slow one (sessions 7 and 8), nearly all of it Python: sqlite3 making each row a tuple
(about 3 µs a row) and the builder packing it (2-3 µs). The scan is ordered by code and a
subject's entries share its code, so it cuts into runs of codes that processes read and
pack at once (``python -m gateway.snapshot_build``); the worker appends their parts in
order into one builder, then places the keys in its table as before.

The strings a record refers to by index (list types, statuses, authorities) are given
indexes apart by each part: part ``k`` of ``n`` gives ``k``, ``k + n``, ``k + 2n``, ...,
so that every record copies over unchanged and the merged table puts each string at its
index (a string met by two parts is kept twice: a few hundred bytes). If a process
fails, the worker builds alone, as before: the snapshot is the same either way.

Consistency is the one-process build's: the change-log version is read before any part's
scan begins, each part reads in one transaction of its own, begun later, and the catch-up
after the build applies every change after that version again.

A part travels through its process's standard output: the worker reads the parts in
order, straight into its builder's arrays, while the later processes finish (a process
whose part is ready waits on the pipe, holding it in its own memory, not the worker's).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from typing import IO, Final

import msgspec

from gateway.compact import Subject
from gateway.compact_build import CompactBuilder, _Strings, merged_strings
from gateway.store import live

log = logging.getLogger(__name__)

MODULE: Final = "gateway.snapshot_build"
#: Live entries below which the worker builds alone (starting processes is not worth it).
MIN_ENTRIES: Final = 500_000
MAX_PROCESSES: Final = 8
_CHUNK: Final = 10_000
_PR_SET_PDEATHSIG: Final = 1


class PartHeader(msgspec.Struct, frozen=True):
    entry_count: int
    #: The strings the part's records refer to, at their indexes ("" where another's).
    strings: list[str]
    #: Subjects whose code is not 18 ASCII characters.
    odd: list[tuple[str, Subject]]
    #: Byte lengths of the keys, offsets and payload that follow the header.
    sizes: tuple[int, int, int]


def processes() -> int:
    """How many processes a build takes: one a core this process may run on (a
    container's cpuset, not the host's count), at most :data:`MAX_PROCESSES`."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return min(cores, MAX_PROCESSES)


def _die_with_parent() -> None:
    """Be killed when the worker that started this process ends (Linux), rather than
    scan on for a minute after a shutdown; end now if it already has."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:
        sys.exit(1)


def write_part(
    path: str, low: str | None, high: str | None, part: int, parts: int, out: IO[bytes]
) -> None:
    """Scan and pack the live subjects from ``low`` to ``high`` (excluded) of the store at
    ``path`` as part ``part`` (from 0) of ``parts``; write it to ``out``."""
    builder = CompactBuilder(_Strings(start=part, stride=parts))
    conn = live.scan_connection(path)
    try:
        for rows, grades in live.stream_rows(conn, _CHUNK, low, high):
            builder.add_rows(rows, grades)
        builder.close_rows()
    finally:
        conn.close()
    keys, offsets, payload, odd = builder.part()
    raw_offsets = memoryview(offsets).cast("B")
    header = msgspec.msgpack.encode(
        PartHeader(
            builder.entry_count,
            builder.strings,
            list(odd.items()),
            (len(keys), raw_offsets.nbytes, len(payload)),
        )
    )
    out.write(len(header).to_bytes(8, "little"))
    out.write(header)
    for data in (keys, raw_offsets, payload):
        out.write(data)
    out.flush()


def read_part(source: IO[bytes], builder: CompactBuilder) -> list[str]:
    """Append the part written by :func:`write_part` to ``builder``; its strings."""
    length = int.from_bytes(source.read(8), "little")
    header = msgspec.msgpack.decode(source.read(length), type=PartHeader)
    builder.append_part(source.read, header.sizes, header.odd, header.entry_count)
    return header.strings


async def build_in_parts(path: str, cuts: list[str]) -> CompactBuilder | None:
    """The live subjects of the store at ``path``, packed by one process a part between
    ``cuts`` (codes: ``Store.live_plan``) into one builder; None if the worker should
    build alone (no cuts; a process that failed: logged)."""
    if not cuts:
        return None
    bounds = list(zip([None, *cuts], [*cuts, None], strict=True))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for part, (low, high) in enumerate(bounds):
            command = [sys.executable, "-m", MODULE, path, low or "", high or ""]
            procs.append(
                subprocess.Popen(
                    [*command, str(part), str(len(bounds))],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                )
            )
        started = time.monotonic()
        builder = await asyncio.to_thread(_assemble, procs)
        if builder is not None:
            log.info(
                "snapshot packed in %d parts by as many processes in %.1f s",
                len(procs),
                time.monotonic() - started,
            )
        return builder
    except OSError as exc:
        log.warning("snapshot not built in parts (%s): the worker builds it alone", exc)
        return None
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(OSError):
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


def _assemble(procs: list[subprocess.Popen[bytes]]) -> CompactBuilder | None:
    builder, strings = CompactBuilder(), []
    for number, proc in enumerate(procs, start=1):
        assert proc.stdout is not None
        failure = ""
        try:
            strings.append(read_part(proc.stdout, builder))
        except (EOFError, ValueError, msgspec.DecodeError) as exc:
            failure = f": {exc}"
        status = proc.wait()
        if failure or status != 0:
            log.warning(
                "part %d of the snapshot's build failed (exit status %s%s): "
                "the worker builds it alone",
                number,
                status,
                failure,
            )
            return None
    builder.use_strings(merged_strings(strings))
    return builder


def main(argv: list[str]) -> int:  # pragma: no cover - run as a child process
    if len(argv) != 5:
        print(
            f"usage: python -m {MODULE} DATABASE_PATH LOW HIGH PART PARTS "
            "(codes, '' for an open end; the part's number from 0)",
            file=sys.stderr,
        )
        return 2
    _die_with_parent()
    path, low, high, part, parts = argv
    write_part(path, low or None, high or None, int(part), int(parts), sys.stdout.buffer)
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a child process
    sys.exit(main(sys.argv[1:]))

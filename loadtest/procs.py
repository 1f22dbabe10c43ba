"""What the servers under test use, read from ``/proc`` by process group (a server, its
workers and their children): resident memory, CPU time, and waiting until they are quiet.

A server may go on working after its load stops: the gateway indexes and rolls up the
checks it recorded, and checkpoints its log, in the lull that follows (by design: an
approval counter's load has lulls). On a shared machine that work would land on the next
app's measurement, so the bench waits for every server to be quiet between runs, and
reports the CPU the gateway spent after each of its runs.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path

#: Clock ticks a second, the unit of the CPU times in ``/proc/<pid>/stat``.
TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int | str) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command's name in parentheses (which may
    hold spaces): the line's 3rd field (state) is the 1st here, its 14th (utime) the 12th."""
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()


def _members(pgid: int) -> list[int]:
    """The processes of the group and their descendants: a server, its workers and what
    they started in sessions of their own (the gateway's sync process, one a worker)."""
    parents: dict[int, int] = {}
    found: set[int] = set()
    for name in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = _stat(name)  # state, ppid, pgrp, ...
            parents[int(name)] = int(fields[1])
            if int(fields[2]) == pgid:
                found.add(int(name))
    grew = True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in found} - found
        found |= children
        grew = bool(children)
    return sorted(found)


def group_rss_kb(pgid: int) -> int:
    """Sum of VmRSS over a process group and its children: a server, its workers and their
    sync processes (shared pages count twice)."""
    total = 0
    for pid in _members(pgid):
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{pid}/status").read_text()
            total += sum(int(kb) for kb in re.findall(r"^VmRSS:\s+(\d+)", status, re.M))
    return total


def group_cpu_seconds(pgids: Iterable[int]) -> float:
    """User and system CPU seconds of every live process of the groups and their children,
    all threads.

    >>> group_cpu_seconds([os.getpgid(0)]) > 0
    True
    """
    ticks = 0
    for pgid in pgids:
        for pid in _members(pgid):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = _stat(pid)
                ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / TICKS


def main_threads_cpu(pgid: int) -> dict[int, float]:
    """CPU seconds of the main thread of every live process of the group and its children,
    by pid. A granian worker runs its event loop in its main thread (its other threads are
    the server's I/O, and the gateway's syncers and upkeep)."""
    seconds: dict[int, float] = {}
    for pid in _members(pgid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = _stat(f"{pid}/task/{pid}")
            seconds[pid] = (int(fields[11]) + int(fields[12])) / TICKS
    return seconds


def loop_busy(before: dict[int, float], after: dict[int, float], loops: int, wall: float) -> float:
    """The share of ``wall`` seconds the ``loops`` busiest main threads spent on a CPU, on
    average, between two readings of :func:`main_threads_cpu`. Below 1, a loop waited: for
    requests (the load generator or the server's I/O threads behind), or in a blocking call
    (a disk write). Idle processes (granian's supervisor) are left out by taking the busiest.

    >>> loop_busy({1: 0.0, 2: 5.0, 3: 1.0}, {1: 0.1, 2: 13.0, 3: 7.0, 4: 9.0}, 2, 10.0)
    0.85
    """
    used = sorted((after[pid] - before.get(pid, 0.0) for pid in after), reverse=True)
    return round(sum(used[:loops]) / loops / wall, 3) if used and wall > 0 else 0.0


def wait_quiet(
    pgids: Iterable[int],
    *,
    below: float = 0.05,
    window: float = 0.5,
    quiet_for: float = 2.0,
    timeout: float = 120.0,
) -> tuple[float, float]:
    """Wait until the groups have used less than ``below`` of a core in every ``window`` for
    ``quiet_for`` seconds (the gateway's upkeep looks for a lull once a second), at most
    ``timeout`` seconds; (seconds until the quiet began, CPU seconds used until then)."""
    groups = list(pgids)
    start = time.monotonic()
    first = last = group_cpu_seconds(groups)
    busy_until, busy_cpu = 0.0, 0.0
    while True:
        time.sleep(window)
        now = group_cpu_seconds(groups)
        waited = time.monotonic() - start
        if now - last >= below * window:
            busy_until, busy_cpu = waited, now - first
        elif waited - busy_until >= quiet_for or waited >= timeout:
            return busy_until, busy_cpu
        last = now

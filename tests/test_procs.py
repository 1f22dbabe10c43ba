"""``loadtest.procs``: the bench waits for a server that works on after its load, and
tells how much CPU that took; a quiet one is not waited for."""

from __future__ import annotations

import doctest
import os
import signal
import subprocess
import sys
import time

import pytest

from loadtest import procs

#: Seconds of work (two threads of a process, and a child, all in its group) after a
#: pause given as its argument, then sleeps: a server whose upkeep goes on after the load.
BUSY = 1.0
WORKER = f"""
import subprocess, sys, threading, time
def spin(until):
    while time.monotonic() < until:
        pass
time.sleep(float(sys.argv[1]))
until = time.monotonic() + {BUSY}
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
threading.Thread(target=spin, args=(until,)).start()
spin(until)
time.sleep(60)
"""


@pytest.mark.parametrize("later", [0.0, 0.6])
def test_waits_until_a_group_stops_working_and_counts_its_cpu(later: float) -> None:
    """Also when the work begins a moment after the load (the upkeep's next tick)."""
    proc = subprocess.Popen([sys.executable, "-c", WORKER, str(later)], start_new_session=True)
    try:
        time.sleep(0.2)  # past the interpreter's start
        waited, cpu = procs.wait_quiet([proc.pid], window=0.25, quiet_for=1.0, timeout=20)
        assert later + BUSY - 0.5 <= waited < later + BUSY + 2.0
        assert cpu >= 0.6 * (BUSY - 0.2)  # one spinning thread at least, on a shared machine
        assert len(procs._members(proc.pid)) == 2  # the child counts too
        assert procs.group_rss_kb(proc.pid) > 0
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the child too
        proc.wait()


def test_a_quiet_group_is_not_waited_for() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    try:
        time.sleep(0.3)  # past the interpreter's start
        waited, cpu = procs.wait_quiet([proc.pid], window=0.25, quiet_for=1.0, timeout=20)
        assert waited == 0.0
        assert cpu < 0.05
    finally:
        proc.kill()
        proc.wait()


#: A server whose worker starts a helper in a session of its own (as the gateway's worker
#: starts its sync process) that then spins for a second.
DETACHED = """
import subprocess, sys, time
spin = "import time; end = time.monotonic() + 1.0\\nwhile time.monotonic() < end: pass"
spin += "\\ntime.sleep(60)"
subprocess.Popen([sys.executable, "-c", spin], start_new_session=True)
time.sleep(60)
"""


def test_a_child_in_a_session_of_its_own_counts_in_the_groups_cpu() -> None:
    proc = subprocess.Popen([sys.executable, "-c", DETACHED], start_new_session=True)
    try:
        time.sleep(0.3)
        members = procs._members(proc.pid)
        assert len(members) == 2
        (helper,) = (pid for pid in members if pid != proc.pid)
        assert os.getpgid(helper) != proc.pid  # outside the group: found as a descendant
        before = procs.group_cpu_seconds([proc.pid])
        time.sleep(1.2)
        assert procs.group_cpu_seconds([proc.pid]) - before >= 0.5
    finally:
        for pid in procs._members(proc.pid):
            os.kill(pid, signal.SIGKILL)
        proc.wait()


#: A server's worker (a child in its group) that spins for a second in the thread given as
#: its argument, "main" (an event loop at work) or "side" (a syncer, the upkeep), then sleeps.
SPINNER = """
import subprocess, sys, time
spin = "import sys, threading, time\\n"
spin += "def work():\\n    end = time.monotonic() + 1.0\\n    while time.monotonic() < end: pass\\n"
spin += "work() if sys.argv[1] == 'main' else threading.Thread(target=work).start()\\n"
spin += "time.sleep(60)"
subprocess.Popen([sys.executable, "-c", spin, sys.argv[1]])
time.sleep(60)
"""


@pytest.mark.parametrize("where", ["main", "side"])
def test_an_event_loop_busy_is_told_from_the_workers_other_threads(where: str) -> None:
    """The bench's "event loops on a CPU" reads the workers' main threads alone: a worker
    spinning there counts as a busy loop; one spinning in another thread does not (though
    its process's CPU counts all the same)."""
    proc = subprocess.Popen([sys.executable, "-c", SPINNER, where], start_new_session=True)
    try:
        time.sleep(0.2)
        loops, cpu = procs.main_threads_cpu(proc.pid), procs.group_cpu_seconds([proc.pid])
        time.sleep(1.2)
        busy = procs.loop_busy(loops, procs.main_threads_cpu(proc.pid), 1, 1.0)
        assert procs.group_cpu_seconds([proc.pid]) - cpu >= 0.5
        assert (busy >= 0.5) if where == "main" else (busy < 0.2)
    finally:
        for pid in procs._members(proc.pid):
            os.kill(pid, signal.SIGKILL)
        proc.wait()


def test_doctests() -> None:
    assert doctest.testmod(procs).failed == 0

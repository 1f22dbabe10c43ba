"""A worker that writes records to its record log and dies without closing it (a crash).

``python -m tests.recordlog_child DIRECTORY STORE RECORDS``: ``STORE`` is the store's
identity, ``RECORDS`` a msgpack file of lists of checks, one list a frame. The store's
fsync never returns (as if the store lost everything not yet fsynced when the worker
died): only the log holds the records. Prints the slot's path.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import msgspec

from gateway.model import CheckRecord
from gateway.recordlog import RecordLog


def main() -> None:
    directory, store, records = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    frames = msgspec.msgpack.decode(records.read_bytes(), type=list[list[CheckRecord]])
    never = threading.Event()
    log = RecordLog.open(
        directory,
        store=store,
        ring_bytes=1 << 20,
        sync_store=never.wait,
        restore=lambda c, f: None,
    )
    for frame in frames:
        log.write(frame, [])
    print(log.path, flush=True)
    os._exit(0)  # no close: the slot is left as a killed worker leaves it


if __name__ == "__main__":
    main()

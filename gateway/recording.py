"""What the recorder's parts share: a record's settling, the writers it uses, a full queue.

:class:`Joint` settles the records of a batch check with one future; the writer protocols
are what :mod:`gateway.store.checks` gives the recorder (a thread's writer, the loop's
inline writer); :class:`RecorderFull` is answered 503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Protocol

from gateway.model import CheckRecord, FeedbackRecord


class Settles(Protocol):
    """What a record's commit resolves: its own future, or a batch's :class:`Joint`."""

    def done(self) -> bool: ...

    def set_result(self, result: bool, /) -> None: ...

    def set_exception(self, exception: BaseException, /) -> None: ...


class Joint:
    """One future for the records of a batch check: resolved once the last of them is
    committed, failed if their commit fails (they go in one: see
    :func:`gateway.pipeline.whole_groups`). A thousand codes wait on one future, not on a
    thousand gathered.

    >>> import asyncio
    >>> loop = asyncio.new_event_loop()
    >>> joint = Joint(loop.create_future(), 2)
    >>> joint.set_result(True); joint.done()
    False
    >>> joint.set_result(True); joint.future.result()
    True
    >>> loop.close()
    """

    __slots__ = ("future", "left")

    def __init__(self, future: asyncio.Future[bool], records: int) -> None:
        self.future = future
        self.left = records

    def done(self) -> bool:
        return self.future.done()

    def set_result(self, result: bool, /) -> None:
        self.left -= 1
        if self.left <= 0 and not self.future.done():
            self.future.set_result(True)

    def set_exception(self, exception: BaseException, /) -> None:
        if not self.future.done():
            self.future.set_exception(exception)


Pending = tuple[CheckRecord | FeedbackRecord, Settles]


class Writer(Protocol):
    def write(self, checks: list[CheckRecord], feedback: list[FeedbackRecord]) -> list[bool]: ...

    def close(self) -> None: ...


class InlineWriter(Protocol):
    def try_write(
        self, checks: list[CheckRecord], feedback: list[FeedbackRecord]
    ) -> list[bool] | None: ...

    def write(self, checks: list[CheckRecord], feedback: list[FeedbackRecord]) -> list[bool]: ...

    @property
    def path(self) -> Path: ...

    def sync_wal(self) -> None: ...

    def close(self) -> None: ...


class RecorderFull(Exception):
    """The queue is full (or the recorder is stopping): answer 503, try again later."""

    def __init__(self, retry_after: int = 1) -> None:
        super().__init__("recorder queue full")
        self.retry_after = retry_after

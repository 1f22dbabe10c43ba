"""Logs as one JSON object a line, and the request id that ties a line to an answer.

Every request gets an id: the caller's own ``X-Request-ID`` when it sends a sane one
(1 to 64 letters, digits, ``.``, ``_`` or ``-``), else one made here (a random prefix per
worker and a counter: unique, and cheap on the hot path). It comes back in the
``X-Request-ID`` header of every answer and is in every log line written about the
request (``request_id``). Lines carry no request or response body, and pass through the
redacting filter (``gateway.privacy``) before they are formatted.

>>> import logging
>>> record = logging.LogRecord("gateway", logging.WARNING, __file__, 1, "slow %s", ("fsync",),
...                            None)
>>> record.request_id = "r-1"
>>> line = JsonFormatter().format(record)
>>> sorted(msgspec.json.decode(line))
['level', 'logger', 'msg', 'pid', 'request_id', 'ts']
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Final

import msgspec

from gateway.clock import CST

HEADER: Final = b"x-request-id"
_SANE: Final = re.compile(rb"[A-Za-z0-9._-]{1,64}")
_encode: Final = msgspec.json.Encoder().encode
#: Attributes of every LogRecord: whatever else a record carries is an extra field.
_STANDARD: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}  # fmt: skip


class RequestIds:
    """Ids for the requests of one worker: ``<8 random hex>-<counter>``."""

    def __init__(self) -> None:
        self._prefix = os.urandom(4).hex()
        self._counter = itertools.count(1)

    def take(self, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
        """The caller's sane ``X-Request-ID``, or a new id."""
        for name, value in headers:
            if name == HEADER and _SANE.fullmatch(value):
                return value
        return f"{self._prefix}-{next(self._counter):x}".encode()


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", "pid", ...extras, "exc"}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, CST).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value if isinstance(value, (str, int, float, bool)) else str(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc"] = record.exc_text
        return _encode(line).decode()


def use_json_logs() -> None:
    """Format every handler configured so far (the root logger's and each named
    logger's) as JSON lines. Call after logging is configured (end of ``create_app``)."""
    formatter = JsonFormatter()
    manager = logging.Logger.manager
    for logger in [logging.getLogger(), *manager.loggerDict.values()]:
        for handler in getattr(logger, "handlers", ()):
            handler.setFormatter(formatter)

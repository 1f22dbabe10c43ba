"""The store: the only place with SQL (SQLite via aiosqlite; WAL; versioned migrations).

* :class:`Store` (async): callers and keys, list entries and their lifecycle,
  grades, what the snapshot and the feed load, reads of checks and feedback.
* :class:`CheckWriter` (sync): the recorder's group-commit writer of checks
  and feedback, on its own connection in its own thread.
* :func:`key_digest`, :func:`matches`: what is kept of an API key, and its check.
"""

from __future__ import annotations

from gateway.store.callers import KeyInForce, KeyLimits, KeyNotFound
from gateway.store.checks import CheckWriter, StoredCheck
from gateway.store.entries import UpsertResult
from gateway.store.errors import EntryNotFound, InvalidTransition, SchemaError, StoreError
from gateway.store.grades import GradeResult
from gateway.store.keys import key_digest, key_id_of, matches, new_key
from gateway.store.live import LiveRows
from gateway.store.maintenance import Maintenance
from gateway.store.schema import LATEST as SCHEMA_VERSION
from gateway.store.store import Store

__all__ = [
    "SCHEMA_VERSION",
    "CheckWriter",
    "EntryNotFound",
    "GradeResult",
    "InvalidTransition",
    "KeyInForce",
    "KeyLimits",
    "KeyNotFound",
    "LiveRows",
    "Maintenance",
    "SchemaError",
    "Store",
    "StoreError",
    "StoredCheck",
    "UpsertResult",
    "key_digest",
    "key_id_of",
    "matches",
    "new_key",
]

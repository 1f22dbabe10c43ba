"""Configuration, read once from the environment (``GATEWAY_*``).

Every field of :class:`Settings` is set by the variable of its upper-cased
name with the ``GATEWAY_`` prefix (``db`` ← ``GATEWAY_DB``). Nothing reads the
environment at import time: call :meth:`Settings.from_env`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import msgspec

PREFIX = "GATEWAY_"


class SettingsError(ValueError):
    pass


#: What ``GATEWAY_DB`` starts with when it names a PostgreSQL database.
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(db: str) -> bool:
    """Whether ``db`` (``GATEWAY_DB``) names a PostgreSQL database rather than a SQLite file.

    >>> is_postgres_url("postgresql://gateway@db:5432/gateway"), is_postgres_url("var/g.db")
    (True, False)
    """
    return db.startswith(POSTGRES_SCHEMES)


def db_label(db: str) -> str:
    """``db`` as logs and messages may show it: a URL's password replaced by ``***``.

    >>> db_label("postgresql://gateway:s3cret@db:5432/gateway"), db_label("var/g.db")
    ('postgresql://gateway:***@db:5432/gateway', 'var/g.db')
    """
    if not is_postgres_url(db):
        return db
    return re.sub(r"^(\w+://[^:/@]*):[^@]*@", r"\1:***@", db)


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    #: The store: a SQLite file (the embedded store), or a PostgreSQL URL
    #: (``postgresql://user:password@host:5432/db``) that several nodes share.
    db: Annotated[str, msgspec.Meta(min_length=1)] = "./var/gateway.db"
    #: Directory of this node's own files (the workers' metrics, the saved snapshot, an
    #: import's staging file); empty means the SQLite file's directory, or ``./var`` when
    #: ``db`` is a PostgreSQL URL.
    local_dir: str = ""
    #: Catalog directory; empty means the packaged catalog.
    catalog: str = ""
    #: Redis for several nodes (``redis://host:6379/0``): list changes travel on a stream
    #: and the packed snapshot is kept there for fast starts. Empty: embedded (every worker
    #: follows the store's change log).
    redis_url: str = ""
    #: The URL names a node of a Redis Cluster (the client then follows its slots; the
    #: keys' hash tags keep what one script touches in one slot).
    redis_cluster: bool = False
    #: Prefix of every Redis key; the stream and the snapshot's index share the hash tag
    #: ``{prefix}``, so they live in one slot of a Redis Cluster.
    redis_prefix: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")] = "gateway"
    #: Milliseconds a Redis command may take before it counts as failed (checks never
    #: wait on Redis; this bounds how long a list change or a start waits for it).
    redis_timeout_ms: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 100
    #: Milliseconds to open a connection to Redis.
    redis_connect_timeout_ms: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 200
    #: Retries of a Redis command that failed on the connection (no back-off; the next
    #: poll retries again).
    redis_retries: Annotated[int, msgspec.Meta(ge=0, le=5)] = 1
    #: Messages kept on the change stream (trimmed approximately); a worker further
    #: behind than that catches up from the store's change log.
    redis_stream_length: Annotated[int, msgspec.Meta(ge=100)] = 100_000
    #: Days after a check before missing feedback counts as overdue.
    feedback_due_days: Annotated[int, msgspec.Meta(ge=1)] = 5
    #: SQLite synchronous mode of the check recorder: FULL survives power loss, NORMAL
    #: survives a crash of the process.
    sync: Literal["FULL", "NORMAL"] = "FULL"
    #: With SQLite and ``sync`` FULL: MiB of each worker's record log (``<db>.records/``), a
    #: ring where a turn's checks are made durable by one write before they are answered
    #: (see gateway.recordlog); 0: SQLite's own log is fsynced instead, by a sync process.
    record_log_mb: Annotated[int, msgspec.Meta(ge=0, le=4096)] = 32
    #: With a record log: milliseconds a check, durable in its frame, may wait before it is
    #: inserted into SQLite, with every check framed meanwhile (see gateway.storebehind);
    #: 0 inserts each turn's checks before their frame.
    store_delay_ms: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 10
    #: Checks and feedback waiting for their commit before new ones get 503.
    recorder_queue: Annotated[int, msgspec.Meta(ge=1)] = 20_000
    #: Seconds between two reads of the change log.
    poll_interval: Annotated[float, msgspec.Meta(gt=0, le=10)] = 0.1
    #: Seconds between two sweeps marking entries past their end date as expired.
    expiry_interval: Annotated[float, msgspec.Meta(gt=0)] = 3600.0
    #: Where the packed snapshot is saved for fast starts: empty means ``<db>.snapshot``
    #: (``<local_dir>/gateway.snapshot`` with PostgreSQL), ``off`` never saves nor reads one.
    snapshot_file: str = ""
    #: Seconds between two looks at the store for changed API keys (a revoked key fails
    #: on every worker within this).
    keys_refresh: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.5
    #: Requests a second allowed to a key that has no limit of its own; 0: no limit.
    rate_limit: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    #: Burst allowed above that rate (requests); 0: one second's worth.
    rate_burst: Annotated[int, msgspec.Meta(ge=0)] = 0
    #: Log lines: ``json`` (one object a line, with the request id) or ``text``.
    log_format: Literal["json", "text"] = "json"
    #: Worker processes serving (set by ``serve --workers``): each enforces its share of
    #: every rate limit.
    workers: Annotated[int, msgspec.Meta(ge=1)] = 1

    @property
    def snapshot_path(self) -> Path | None:
        if self.snapshot_file.lower() == "off":
            return None
        if self.snapshot_file:
            return Path(self.snapshot_file)
        if is_postgres_url(self.db):
            return self.local_path / "gateway.snapshot"
        return Path(f"{self.db}.snapshot")

    @property
    def local_path(self) -> Path:
        """The directory of this node's own files (``local_dir``, or its default)."""
        if self.local_dir:
            return Path(self.local_dir)
        return Path("var") if is_postgres_url(self.db) else Path(self.db).parent

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        fields = set(cls.__struct_fields__)
        values = {
            name[len(PREFIX) :].lower(): value
            for name, value in env.items()
            if name.startswith(PREFIX) and name[len(PREFIX) :].lower() in fields
        }
        try:
            return msgspec.convert(values, cls, strict=False)
        except msgspec.ValidationError as exc:
            found = re.search(r"\$\.(\w+)", str(exc))
            name = PREFIX + found.group(1).upper() if found else "GATEWAY_*"
            reason = str(exc).split(" - at ")[0]
            raise SettingsError(f"{name}: {reason}") from None

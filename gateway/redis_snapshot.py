"""The packed snapshot kept in Redis, so that a new worker on any node starts without the store.

The bytes are those of a saved snapshot file (:mod:`gateway.snapshot_file`: a
header with the change-log sequence and its fingerprint, then the packed
arrays), cut into chunks of :data:`CHUNK_BYTES`:

- ``{prefix}:snapshot`` — a hash naming the snapshot in force: ``version``,
  ``fingerprint``, ``chunks``, ``bytes``, ``entries``;
- ``<prefix>:snapshot-chunk:{<prefix>:<version>:<i>}`` — chunk ``i``. Each
  chunk has its own hash tag, so a Redis Cluster spreads a large snapshot over
  its shards; a snapshot's chunks are written before the hash names them and
  never change.

A worker that packs a newer base than the one in force uploads it (one at a
time cluster-wide: ``{prefix}:snapshot:lock``), then moves the hash to it in
one ``HSET``; the chunks it replaced expire after :data:`OLD_CHUNKS_TTL_MS`,
long enough for a worker reading them to finish. Reading and writing run in a
thread with the synchronous client (:func:`gateway.redis_client.transfer`):
one chunk in memory at a time beside the arrays being filled.

>>> chunk_key("gateway", 42, 3)
'gateway:snapshot-chunk:{gateway:42:3}'
"""

from __future__ import annotations

import io
import logging
import uuid
from typing import Final

from gateway import snapshot_file
from gateway.compact import CompactSubjects
from gateway.redis_client import SyncClient
from gateway.snapshot_file import Saved

log = logging.getLogger(__name__)

CHUNK_BYTES: Final = 8 * 1024 * 1024
OLD_CHUNKS_TTL_MS: Final = 600_000
LOCK_TTL_MS: Final = 300_000


def meta_key(prefix: str) -> str:
    return f"{{{prefix}}}:snapshot"


def chunk_key(prefix: str, version: int, index: int) -> str:
    return f"{prefix}:snapshot-chunk:{{{prefix}:{version}:{index}}}"


class _ChunkWriter(io.RawIOBase):
    """Collects what is written into chunks and stores each one as it fills."""

    def __init__(self, client: SyncClient, prefix: str, version: int) -> None:
        self.client, self.prefix, self.version = client, prefix, version
        self.buffer = bytearray()
        self.chunks = 0
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        view = memoryview(data)  # type: ignore[arg-type]
        length = view.nbytes
        view = view.cast("B")
        while view.nbytes:
            room = CHUNK_BYTES - len(self.buffer)
            self.buffer += view[:room]
            view = view[room:]
            if len(self.buffer) == CHUNK_BYTES:
                self.flush_chunk()
        self.size += length
        return length

    def flush_chunk(self) -> None:
        if self.buffer:
            self.client.set(chunk_key(self.prefix, self.version, self.chunks), bytes(self.buffer))
            self.chunks += 1
            self.buffer = bytearray()


class _ChunkReader(io.RawIOBase):
    """Reads a snapshot's chunks one after the other, fetching each when it is reached."""

    def __init__(self, client: SyncClient, prefix: str, version: int, chunks: int) -> None:
        self.client, self.prefix, self.version, self.chunks = client, prefix, version, chunks
        self.index = 0
        self.current = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, target: object) -> int:
        out = memoryview(target).cast("B")  # type: ignore[arg-type]
        while not self.current.nbytes:
            if self.index == self.chunks:
                return 0
            chunk = self.client.get(chunk_key(self.prefix, self.version, self.index))
            if chunk is None:
                raise LookupError(f"snapshot {self.version}: chunk {self.index} is gone")
            self.current = memoryview(chunk)  # type: ignore[arg-type]
            self.index += 1
        length = min(out.nbytes, self.current.nbytes)
        out[:length] = self.current[:length]
        self.current = self.current[length:]
        return length


def version_in_force(client: SyncClient, prefix: str) -> int | None:
    value = client.hget(meta_key(prefix), "version")
    return None if value is None else int(value)


def upload(
    client: SyncClient,
    prefix: str,
    subjects: CompactSubjects,
    version: int,
    fingerprint: str,
    entry_count: int,
) -> bool:
    """Put the snapshot at ``version`` in force unless Redis holds one as recent; return
    whether it was uploaded. Skipped while another worker uploads."""
    current = version_in_force(client, prefix)
    if current is not None and current >= version:
        return False
    lock, token = f"{meta_key(prefix)}:lock", uuid.uuid4().hex
    if not client.set(lock, token, nx=True, px=LOCK_TTL_MS):
        return False
    try:
        old = client.hgetall(meta_key(prefix))
        current = int(old[b"version"]) if old else None
        if current is not None and current >= version:
            return False
        writer = _ChunkWriter(client, prefix, version)
        snapshot_file.write_to(writer, subjects, version, fingerprint, entry_count)  # type: ignore[arg-type]
        writer.flush_chunk()
        client.hset(
            meta_key(prefix),
            mapping={
                "version": version,
                "fingerprint": fingerprint,
                "chunks": writer.chunks,
                "bytes": writer.size,
                "entries": entry_count,
            },
        )
        if old:
            for index in range(int(old[b"chunks"])):
                client.pexpire(chunk_key(prefix, current or 0, index), OLD_CHUNKS_TTL_MS)
        return True
    finally:
        if client.get(lock) == token.encode():
            client.delete(lock)


def download(client: SyncClient, prefix: str) -> Saved | None:
    """The snapshot in force, read into this process; None if Redis holds none (or it
    went while being read)."""
    meta = client.hgetall(meta_key(prefix))
    if not meta:
        return None
    version, chunks = int(meta[b"version"]), int(meta[b"chunks"])
    reader = io.BufferedReader(_ChunkReader(client, prefix, version, chunks), CHUNK_BYTES)
    try:
        return snapshot_file.read_from(reader)
    except LookupError as exc:
        log.warning("snapshot in Redis not read: %s", exc)
        return None

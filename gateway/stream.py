"""The change stream in Redis: list changes, in the store's order, for every worker of every node.

The store's change log stays the truth; the stream carries it to the workers so
that they never poll the store. A message is the full new state of each subject
that changed in a range of the change log, with the range's ends:

    id   = "<seq>-0"   the last change-log sequence it covers (ids are sequences)
    prev = "<seq>"     the sequence of the message before it (where the range began)
    d    = msgpack     [(uscc, (entries, grade) | nil), ...]

So a worker's position on the stream *is* its snapshot's version: after a
reconnect, a fallback to the store or a restart it reads on from
``XREAD ... <version>-0``. A message whose ``prev`` is past the worker's
version means the stream lacks changes the worker has not seen (trimmed, or
Redis restarted empty and re-seeded): the worker reads them from the store.

**Publishing.** Any process may publish what the store holds past the stream's
head (``publish_pending``): read the head, the changes after it, the states of
their subjects, then append *only if the head is still what was read* (a Lua
script: compare, ``XADD``, move the head, in one step). Two publishers never
interleave: the second one's append fails, it reads the new head and goes on
from there. Because each message's states are read after every change it
covers was committed and after the previous message was appended, a state on
the stream is never older than one before it.

**Keys** share the hash tag ``{prefix}``, so the scripts' two keys live in one
slot of a Redis Cluster: ``{prefix}:changes`` (the stream) and
``{prefix}:head`` (its last sequence). A Redis restarted empty has no head:
the first publisher re-seeds it at the version of a packed snapshot it holds
(:meth:`ChangeStream.seed`) and publishes the store's changes from there.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Final

import msgspec

from gateway.compact import Subject, as_checked
from gateway.model import Grade, ListEntry
from gateway.redis_client import AsyncClient
from gateway.store.backend import AnyStore

log = logging.getLogger(__name__)

#: Change-log rows read (and at most subjects carried) per message.
PAGE: Final = 2_000

Delta = list[tuple[str, Subject | None]]
_encode: Final = msgspec.msgpack.Encoder().encode
_decode_delta: Final = msgspec.msgpack.Decoder(
    list[tuple[str, tuple[tuple[ListEntry, ...], Grade | None] | None]]
).decode

_APPEND: Final = """
local head = redis.call('GET', KEYS[2])
if head ~= ARGV[1] then return head or '' end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], ARGV[2] .. '-0', 'prev', ARGV[1], 'd', ARGV[4])
redis.call('SET', KEYS[2], ARGV[2])
return 'ok'
"""
_SEED: Final = """
local head = redis.call('GET', KEYS[2])
if head then return head end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1])
return ARGV[1]
"""


class Message(msgspec.Struct, frozen=True):
    seq: int
    prev: int
    delta: Delta


def encode_delta(
    usccs: Sequence[str], states: dict[str, tuple[tuple[ListEntry, ...], Grade | None]]
) -> bytes:
    """The subjects' states as a message carries them (what a check answers with)."""
    out: list[tuple[str, Subject | None]] = []
    for uscc in usccs:
        entries, grade = states.get(uscc, ((), None))
        out.append((uscc, as_checked(Subject(entries, grade)) if entries or grade else None))
    return _encode(out)


def decode_delta(data: bytes) -> Delta:
    return [
        (uscc, None if state is None else Subject(state[0], state[1]))
        for uscc, state in _decode_delta(data)
    ]


class ChangeStream:
    """The stream's keys and the operations on them, through one client."""

    def __init__(self, client: AsyncClient, prefix: str, max_length: int) -> None:
        self.client = client
        self.key = f"{{{prefix}}}:changes"
        self.head_key = f"{{{prefix}}}:head"
        self.max_length = max_length
        self._append = client.register_script(_APPEND)
        self._seed = client.register_script(_SEED)

    async def head(self) -> int | None:
        """The last sequence published; None when the stream was never seeded (or Redis
        restarted empty)."""
        value = await self.client.get(self.head_key)
        return None if value is None else int(value)

    async def seed(self, version: int) -> int:
        """Start the stream at ``version`` if it has no head; return the head in force."""
        return int(await self._seed(keys=[self.key, self.head_key], args=[version]))

    async def append(self, prev: int, seq: int, data: bytes) -> int | None:
        """Append the message covering (prev, seq] if the head is still ``prev``. Return
        None when appended, else the head found (0 if there is none)."""
        found = await self._append(
            keys=[self.key, self.head_key], args=[prev, seq, self.max_length, data]
        )
        if found == b"ok":
            return None
        return int(found) if found else 0

    async def publish_pending(self, store: AnyStore) -> int:
        """Publish every change the store holds past the head; return how many changes.

        Raises ``LookupError`` when the stream has no head (see :meth:`seed`)."""
        head = await self.head()
        if head is None:
            raise LookupError("the change stream has no head: it must be seeded")
        published = 0
        while True:
            changes = await store.changes_since(head, limit=PAGE)
            if not changes:
                return published
            usccs = list(dict.fromkeys(uscc for _, uscc in changes))
            data = encode_delta(usccs, await store.subjects(usccs))
            seq = changes[-1][0]
            found = await self.append(head, seq, data)
            if found is None:
                head = seq
                published += len(changes)
                if len(changes) < PAGE:
                    return published
            elif found == 0:
                raise LookupError("the change stream lost its head (Redis restarted empty?)")
            else:
                head = found  # another publisher got there first: go on from its head

    async def read(self, after: int, block_ms: int | None, count: int = 50) -> list[Message]:
        """Messages past sequence ``after``; with ``block_ms``, wait that long for one."""
        replies: Any = await self.client.xread(
            {self.key: f"{after}-0"}, count=count, block=block_ms
        )
        messages: list[Message] = []
        for _, items in replies or ():
            for message_id, fields in items:
                seq = int(message_id.split(b"-", 1)[0])
                messages.append(Message(seq, int(fields[b"prev"]), decode_delta(fields[b"d"])))
        return messages

"""What the store raises, besides ``ValueError`` for malformed input."""

from __future__ import annotations

from collections.abc import Iterable


class StoreError(Exception):
    """Base class of the store's own errors."""


class SchemaError(StoreError):
    """The database schema cannot be used by this code (e.g. it is newer)."""


class StoreUnavailable(StoreError):
    """The store cannot be opened: a file that cannot be created or read, a server that
    cannot be reached or refuses the connection."""


class EntryNotFound(StoreError, LookupError):
    """No list entry has this id."""

    def __init__(self, entry_id: str) -> None:
        super().__init__(f"no list entry with id {entry_id!r}")
        self.entry_id = entry_id


class InvalidTransition(StoreError, ValueError):
    """The entry's current status does not allow the wanted change."""

    def __init__(
        self, entry_id: str, current: str, wanted: str, allowed_from: Iterable[str] = ()
    ) -> None:
        allowed = sorted(allowed_from)
        hint = f" (only from {', '.join(allowed)})" if allowed else ""
        super().__init__(f"entry {entry_id!r} is {current!r} and cannot become {wanted!r}{hint}")
        self.entry_id = entry_id
        self.current = current
        self.wanted = wanted
        self.allowed_from = tuple(allowed)

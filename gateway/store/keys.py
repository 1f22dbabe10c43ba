"""API keys: how they look, how they are generated and hashed. Pure functions.

A key is ``gw_<key_id>_<secret>``: ``key_id`` is 8 alphanumeric characters
(a URL-safe public id, shown in listings and logs), ``secret`` is
``secrets.token_urlsafe(32)``. Only ``sha256(key)`` is stored; the key is
shown once, when created. A key has 256 bits of entropy, so one fast hash is
enough (no password-style stretching), and lookups are a dict access.
"""

from __future__ import annotations

import hashlib
import secrets
import string
from typing import Final

KEY_PREFIX: Final = "gw_"
KEY_ID_LENGTH: Final = 8
#: Letters and digits only: URL-safe, and never the ``_`` that separates the parts.
_KEY_ID_ALPHABET: Final = string.ascii_letters + string.digits


def new_key_id() -> str:
    """A random public key id of :data:`KEY_ID_LENGTH` characters."""
    return "".join(secrets.choice(_KEY_ID_ALPHABET) for _ in range(KEY_ID_LENGTH))


def new_key(key_id: str | None = None) -> tuple[str, str]:
    """A fresh ``(key_id, key)``; the key is ``gw_<key_id>_<secret>``."""
    key_id = new_key_id() if key_id is None else key_id
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def hash_key(key: str) -> str:
    """What the store keeps of a key, and what a presented key is looked up by."""
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(key: str) -> str | None:
    """The public key id inside a well-formed key, else None (for logs; never for auth)."""
    end = len(KEY_PREFIX) + KEY_ID_LENGTH
    if len(key) <= end + 1 or not key.startswith(KEY_PREFIX) or key[end] != "_":
        return None
    key_id = key[len(KEY_PREFIX) : end]
    return key_id if all(c in _KEY_ID_ALPHABET for c in key_id) else None

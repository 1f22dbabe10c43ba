"""API keys: how they look, how they are generated and hashed. Pure functions.

A key is ``gw_<key_id>_<secret>``: ``key_id`` is 8 alphanumeric characters
(a URL-safe public id, shown in listings and logs), ``secret`` is
``secrets.token_urlsafe(32)``. The key is shown once, when created; the store
keeps a random salt and ``HMAC-SHA256(salt, key)``. A key has 256 bits of
entropy, so one fast keyed hash is enough (no password-style stretching); the
salt makes every stored digest unique, so a leaked table cannot be matched
against keys seen elsewhere. A presented key is found by its public id and its
digest compared in constant time (:func:`matches`).

>>> key_id, key = new_key()
>>> salt = new_salt()
>>> matches(key, salt, key_digest(key, salt))
True
>>> matches(key + "x", salt, key_digest(key, salt))
False
>>> key_id_of(key) == key_id
True
"""

from __future__ import annotations

import hashlib
import hmac
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


SALT_BYTES: Final = 16


def new_salt() -> str:
    """A random salt (hex) for one key."""
    return secrets.token_hex(SALT_BYTES)


def key_digest(key: str, salt: str) -> str:
    """What the store keeps of a key (hex): ``HMAC-SHA256(salt, key)``; with an empty
    salt (keys created before salts) the plain SHA-256 of the key."""
    if not salt:
        return hashlib.sha256(key.encode()).hexdigest()
    return hmac.digest(bytes.fromhex(salt), key.encode(), "sha256").hex()


def matches(key: str, salt: str, digest: str) -> bool:
    """Whether ``key`` is the key stored as ``digest``, compared in constant time."""
    return hmac.compare_digest(key_digest(key, salt), digest)


def key_id_of(key: str) -> str | None:
    """The public key id inside a well-formed key, else None (for logs; never for auth)."""
    end = len(KEY_PREFIX) + KEY_ID_LENGTH
    if len(key) <= end + 1 or not key.startswith(KEY_PREFIX) or key[end] != "_":
        return None
    key_id = key[len(KEY_PREFIX) : end]
    return key_id if all(c in _KEY_ID_ALPHABET for c in key_id) else None

"""The store on PostgreSQL (``GATEWAY_DB=postgresql://...``), for several nodes sharing one
database: :mod:`gateway.store.pg.migrations` (the same versions as SQLite's, applied at
start under an advisory lock) and :class:`PgStore` (an asyncpg pool behind the methods of
:class:`gateway.store.Store` ported so far). Design: ``docs/postgresql.md``.
"""

from __future__ import annotations

from gateway.settings import is_postgres_url
from gateway.store.pg.migrations import LATEST, MIGRATIONS, migrate, upgrade
from gateway.store.pg.store import PgStore

__all__ = ["LATEST", "MIGRATIONS", "PgStore", "is_postgres_url", "migrate", "upgrade"]

"""The store on PostgreSQL (``GATEWAY_DB=postgresql://...``), for several nodes sharing one
database. So far its schema only: :mod:`gateway.store.pg.migrations` (the same versions as
SQLite's, applied at start under an advisory lock). Design: ``docs/postgresql.md``.
"""

from __future__ import annotations

from gateway.settings import is_postgres_url
from gateway.store.pg.migrations import LATEST, MIGRATIONS, migrate, upgrade

__all__ = ["LATEST", "MIGRATIONS", "is_postgres_url", "migrate", "upgrade"]

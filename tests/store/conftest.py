"""Fixtures of the store tests: ``backend``/``open_store``, which run a test on both stores,
SQLite's and PostgreSQL's (the server and its databases: ``postgres_server`` and
``postgres_url`` in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.store import Store
from gateway.store.pg import PgStore
from tests.store.helpers import OpenStore


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """Which store the test runs on (each test that asks for it runs on both)."""
    return str(request.param)


@pytest.fixture
def open_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> OpenStore:
    """Opens the test's store on ``backend``: SQLite's ``tmp_path / "gateway.db"`` or a fresh
    PostgreSQL database (``postgres_url``, asked for only then, so that a run of the SQLite
    tests alone starts no server). Every call opens the same store again."""
    if backend == "sqlite":
        path = tmp_path / "gateway.db"

        async def open_sqlite() -> Store | PgStore:
            return await Store.open(path)

        return open_sqlite
    url: str = request.getfixturevalue("postgres_url")

    async def open_postgres() -> Store | PgStore:
        return await PgStore.open(url)

    return open_postgres

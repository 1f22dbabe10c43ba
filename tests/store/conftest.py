"""Fixtures of the store tests: a real PostgreSQL server, started once per session (only if
a test asks for it), and a fresh database of its own for each test that asks for one; and
``backend``/``open_store``, which run a test on both stores, SQLite's and PostgreSQL's."""

from __future__ import annotations

import itertools
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.store import Store
from gateway.store.pg import PgStore
from loadtest.pg_server import PostgresServer
from tests.store.helpers import OpenStore

_databases = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster of its own (initdb in a temporary directory, a free port on
    127.0.0.1, trust authentication), never the machine's own server. It runs with fsync
    off and asynchronous commits (``fast``: see loadtest/pg_server.py), which is fine for
    throwaway test data only. Stopped, and its directory removed, at the end of the session.

    Not under pytest's ``tmp_path_factory``: when the tests run as root the server runs as
    the postgres user, who cannot enter pytest's base directory (0700, root's).
    """
    directory = Path(tempfile.mkdtemp(prefix="gateway-pg-"))
    server = PostgresServer(directory, fast=True)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of a new, empty database (named after the test), dropped after the test."""
    slug = re.sub(r"[^a-z0-9_]+", "_", request.node.name.lower()).strip("_")
    name = f"t{next(_databases)}_{slug}"[:63]
    url = postgres_server.create_database(name)
    yield url
    postgres_server.drop_database(name)


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

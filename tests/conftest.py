from __future__ import annotations

import itertools
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import measures_catalog
from loadtest.pg_server import PostgresServer
from loadtest.redis_server import RedisCluster, RedisServer
from measures_catalog import Catalog
from tests.fixtures import Seeded, seed_database

_databases = itertools.count(1)


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    """The packaged catalog, loaded once."""
    return measures_catalog.load()


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    """A writable copy of the packaged catalog directory."""
    target = tmp_path / "catalog"
    shutil.copytree(measures_catalog.DEFAULT_DIR, target)
    return target


@pytest.fixture
def seeded(tmp_path: Path) -> Seeded:
    """A fresh store with keys, entries of every verdict and grades (tests/fixtures.py)."""
    return seed_database(tmp_path / "gateway.db")


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


@pytest.fixture
def pg_seeded(postgres_url: str) -> Seeded:
    """``seeded``'s keys, entries and grades in a fresh PostgreSQL database."""
    return seed_database(postgres_url)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server on a free port, empty, stopped after the test."""
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def redis_cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    """A real Redis Cluster of three masters on free ports, stopped after the test."""
    cluster = RedisCluster(tmp_path).start()
    yield cluster
    cluster.stop()

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import measures_catalog
from loadtest.redis_server import RedisCluster, RedisServer
from measures_catalog import Catalog
from tests.fixtures import Seeded, seed_database


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

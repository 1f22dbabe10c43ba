"""The real app on a real SQLite file, with real keys and entries."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from gateway.app import create_app
from gateway.settings import Settings
from tests.fixtures import Seeded


@pytest.fixture
def client(seeded: Seeded) -> Iterator[TestClient[Any]]:
    app = create_app(Settings(db=str(seeded.path), poll_interval=0.05, keys_refresh=0.2))
    with TestClient(app) as client:
        yield client

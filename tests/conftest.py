from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.helpers import RunningManager, running_manager
from tests.pg import PgServer, running_server
from tests.stores import STORES


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A PostgreSQL server for this test process (skips, saying why, where none can run)."""
    with running_server() as server:
        yield server


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest) -> str | None:
    """The manager's store, each in turn: None (SQLite in the data dir), then a new database
    on the test process's PostgreSQL server."""
    if request.param == "sqlite":
        return None
    server: PgServer = request.getfixturevalue("pg_server")
    return server.database()


@pytest.fixture
async def manager(tmp_path: Path, store_url: str | None) -> AsyncIterator[RunningManager]:
    """A real manager on 127.0.0.1 with a 1 s node-timeout, on each store."""
    async with running_manager(
        tmp_path / "manager", node_timeout=1.0, store_url=store_url
    ) as running:
        yield running

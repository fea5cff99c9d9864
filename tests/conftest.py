from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.helpers import RunningManager, running_manager


@pytest.fixture
async def manager(tmp_path: Path) -> AsyncIterator[RunningManager]:
    """A real manager on 127.0.0.1 with a 1 s node-timeout."""
    async with running_manager(tmp_path / "manager", node_timeout=1.0) as running:
        yield running

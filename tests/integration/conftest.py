"""Fixtures the integration tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.helpers import running_manager
from tests.integration.test_agent import Fleet


@pytest.fixture
async def fleet(tmp_path: Path, store_url: str | None) -> AsyncIterator[Fleet]:
    """A real manager (on each store) and the agents a test starts."""
    async with running_manager(
        tmp_path / "manager", node_timeout=3.0, store_url=store_url
    ) as manager:
        running = Fleet(manager, tmp_path)
        try:
            yield running
        finally:
            # Every agent must stop by itself; one that hangs fails the test.
            failures = []
            for name in list(running.agents):
                try:
                    await running.stop_agent(name)
                except Exception as exc:
                    failures.append(f"{name}: {exc!r}")
            assert not failures, f"agents did not stop cleanly: {failures}"

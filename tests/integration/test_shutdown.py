"""A manager told to stop (SIGTERM) answers what it holds and exits cleanly."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.helpers import PASSWORD, SimNode, wait_for
from tests.procs import manager_process

pytestmark = pytest.mark.slow


async def test_sigterm_answers_held_polls_and_exits_zero(tmp_path: Path) -> None:
    # node-timeout 40 lets the manager hold a poll for 20 s, longer than stop() waits
    # before it falls back to SIGKILL: only a shutdown that answers held polls exits 0.
    with manager_process(tmp_path / "m", password=PASSWORD, node_timeout=40) as manager:
        url = manager.start()
        node = await SimNode.join(url, "pi")
        async with manager.client() as ctl:
            await ctl.add("counter", "file:///srv/counter.git")
        await node.poll()
        held = asyncio.create_task(node.poll(wait=60))

        async def holding() -> bool:
            async with manager.client() as probe:
                return "syncopate_held_polls 1\n" in await probe.metrics()

        await wait_for(holding, what="the poll to be held")
        code = await asyncio.to_thread(manager.stop)
        assert code == 0, manager.output
        seen = await asyncio.wait_for(held, timeout=5)
        assert "counter" in seen
        await node.close()

"""An agent whose token the manager refuses stops using it: it stays well below the credential
throttle's limit (counted per address and scope: manager/throttle.py), and the other nodes on
its address are not disturbed.

With its password it joins again at once (test_agent.py: the agent rejoins a new manager);
without one it stops its projects, which the manager has moved elsewhere, and tries again
30 s to 10 min apart, never reporting or leaving with the refused token.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

from syncopate.manager.throttle import node_scope
from syncopate.node.agent import Agent
from tests.helpers import SimNode, running_manager, wait_for
from tests.integration.test_agent import PY, Fleet, alive, counter_repo


async def test_a_refused_agent_without_password_stops_and_does_not_lock_others_out(
    tmp_path: Path,
) -> None:
    repo = counter_repo(tmp_path)
    async with running_manager(tmp_path / "old", node_timeout=30.0) as old:
        fleet = Fleet(old, tmp_path)
        joined = await fleet.start_agent("pi-1")  # joins with the password, keeps its identity
        await fleet.stop_agent("pi-1")
        # The same node again, as a service that was given no password: its saved identity.
        agent = Agent(replace(joined.settings, password=None))
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        async with old.client() as ctl:
            await ctl.add("counter", repo.url, command=f"{PY} counter.py")
        info = await fleet.until("counter", lambda p: p["status"] == "running", "counter to run")
        port = int(old.url.rsplit(":", 1)[1])
    # A new manager (fresh data) at the same address: it knows no pi-1, and refuses its token.
    async with running_manager(tmp_path / "new", node_timeout=30.0, port=port) as new:
        neighbour = await SimNode.join(new.url, "pi-2")  # another node on the same address
        try:
            await wait_for(
                lambda: asyncio.sleep(0, result=not alive(info["pid"])),
                timeout=30,
                what="the refused agent to stop its project",
            )
            assert agent.rejoin.refused and agent.rejoin.gave_up
            throttle, scope = new.state.throttle, node_scope("pi-1")
            failures = throttle.failures("127.0.0.1", scope)
            assert 1 <= failures <= 2, failures  # its poll, and at most one report
            assert throttle.retry_after("127.0.0.1", scope, time.monotonic()) == 0
            await neighbour.poll()  # the other node is not locked out
            stop.set()
            await asyncio.wait_for(task, timeout=15)
            # Leaving, it sent no final report and no leave with the refused token: nothing
            # more was counted (a right credential clears nothing, so the count is still there).
            assert throttle.failures("127.0.0.1", scope) == failures
        finally:
            stop.set()
            await neighbour.close()

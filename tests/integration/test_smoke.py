from __future__ import annotations

from tests.helpers import RunningManager, SimNode


async def test_join_add_poll_report(manager: RunningManager) -> None:
    node = await SimNode.join(manager.url, "pi-1")
    async with manager.client() as ctl:
        added = await ctl.add("counter", "file:///srv/counter.git", {"count": 0})
        assert added["projects"]["counter"]["node"] == "pi-1"
        seen = await node.poll()
        assert seen["counter"]["persistent-variables"] == {"count": 0}
        await node.report("counter", variables={"count": 5})
        status = await ctl.status(["counter"])
        assert status["counter"]["status"] == "running"
        assert status["counter"]["persistent-variables"] == {"count": 5}
    await node.close()

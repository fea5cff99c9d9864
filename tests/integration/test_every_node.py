"""Every-node projects with real agents (DESIGN §12, issue 15): one copy per node, each with its
own variables; a joining node gets its copy; a dead node's copy is not moved; remove stops all."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from syncopate.errors import InvalidRequest, NotFound
from tests.gitrepos import Repo
from tests.helpers import wait_for
from tests.integration.test_agent import Fleet, alive

# Each copy counts, and writes which node it runs on, into its own persistent variables.
NODE_COUNTER = """\
import os, time
from syncopate import variables

state = variables.load()
while True:
    state["node"] = os.environ["SYNCOPATE_NODE"]
    state["count"] = state.get("count", 0) + 1
    variables.save(state)
    print("count", state["count"], flush=True)
    time.sleep(0.05)
"""


def counting_on(nodes: set[str], least: int = 3) -> Any:
    """A check: every named node's copy runs and has written its own node name and a count."""

    def check(info: dict[str, Any]) -> bool:
        copies = info.get("copies") or {}
        return all(
            copies.get(n, {}).get("status") == "running"
            and copies[n]["persistent-variables"].get("node") == n
            and copies[n]["persistent-variables"].get("count", 0) >= least
            for n in nodes
        )

    return check


async def placed(fleet: Fleet) -> dict[str, list[str]]:
    async with fleet.manager.client() as ctl:
        return {name: info["projects"] for name, info in (await ctl.nodes()).items()}


async def test_every_node_copies_join_death_and_remove(fleet: Fleet) -> None:
    repo = Repo.create(fleet.tmp / "repos" / "mon", {"counter.py": NODE_COUNTER})
    await fleet.start_agent("pi-1")
    await fleet.start_agent("pi-2")
    async with fleet.manager.client() as ctl:
        added = await ctl.add(
            "mon", repo.url, {"count": 0}, command=f"{sys.executable} counter.py", every_node=True
        )
    assert "pi-1" in added["request-information"] and "pi-2" in added["request-information"]
    info = await fleet.until("mon", counting_on({"pi-1", "pi-2"}), "a copy counting on each node")
    assert info["node"] is None and info["status"] == "running"
    assert set(info["copies"]) == {"pi-1", "pi-2"}
    async with fleet.manager.client() as ctl:
        assert set(await ctl.status()) == {"mon"}  # copies are not projects of their own
        # Each copy's output is its own, asked for as PROJECT@NODE.
        kept = await ctl.logs("mon@pi-1")
        assert kept["node"] == "pi-1" and any(line.startswith("count") for line in kept["lines"])
        with pytest.raises(InvalidRequest, match="mon@pi-1"):
            await ctl.logs("mon")
    # Each agent runs it under the project's name.
    assert (fleet.tmp / "nodes" / "pi-2" / "projects" / "mon" / "counter.py").exists()

    await fleet.start_agent("pi-3")
    info = await fleet.until("mon", counting_on({"pi-1", "pi-2", "pi-3"}), "pi-3's copy")
    pids = {n: c["pid"] for n, c in info["copies"].items()}
    assert len(set(pids.values())) == 3 and all(alive(p) for p in pids.values())

    await fleet.stop_agent("pi-2")  # its agent stops: the node is dead at once
    info = await fleet.until(
        "mon", lambda p: p["copies"]["pi-2"]["status"] == "lost", "pi-2's copy to be lost"
    )
    assert "pi-2" in info["copies"]["pi-2"]["reason"]
    assert "not moved" in info["copies"]["pi-2"]["reason"]
    assert set(info["copies"]) == {"pi-1", "pi-2", "pi-3"}  # not moved, not deleted
    assert not alive(pids["pi-2"])
    # The others still run one copy each, the same processes as before.
    assert (await placed(fleet))["pi-1"] == ["mon"] and (await placed(fleet))["pi-3"] == ["mon"]
    await fleet.until("mon", counting_on({"pi-1", "pi-3"}, least=10), "the others to go on")
    info = await fleet.project("mon")
    assert info["copies"]["pi-1"]["pid"] == pids["pi-1"]
    assert info["copies"]["pi-3"]["pid"] == pids["pi-3"]

    async with fleet.manager.client() as ctl:
        await ctl.remove("mon", repo.url)
        with pytest.raises(NotFound):
            await ctl.status(["mon"])

    async def all_stopped() -> bool:
        return not any(alive(pids[n]) for n in ("pi-1", "pi-3"))

    await wait_for(all_stopped, timeout=20, what="every copy's process to stop")
    assert await placed(fleet) == {"pi-1": [], "pi-2": [], "pi-3": []}


async def test_a_returning_node_resumes_its_copy_with_its_variables(fleet: Fleet) -> None:
    repo = Repo.create(fleet.tmp / "repos" / "mon", {"counter.py": NODE_COUNTER})
    await fleet.start_agent("pi-1")
    async with fleet.manager.client() as ctl:
        await ctl.add("mon", repo.url, command=f"{sys.executable} counter.py", every_node=True)
    info = await fleet.until("mon", counting_on({"pi-1"}, least=5), "pi-1's copy to count")
    await fleet.stop_agent("pi-1")
    info = await fleet.until(
        "mon", lambda p: p["copies"]["pi-1"]["status"] == "lost", "the copy to be lost"
    )
    count = info["copies"]["pi-1"]["persistent-variables"]["count"]
    await fleet.start_agent("pi-1")
    info = await fleet.until("mon", counting_on({"pi-1"}, least=count + 3), "it to count on")
    assert info["copies"]["pi-1"]["epoch"] >= 1

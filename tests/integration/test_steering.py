"""Placement you can steer (DESIGN section 12) with real agents, a real manager, real git
repositories and real project processes: node labels and `--on`, `node label` (the CLI), and
calm balance (a fresh node waits 2 x node-timeout, then receives moves one at a time; `--stay`
and exclusive projects stay)."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from syncopate.manager.sql_store import SqlStore
from tests.gitrepos import Repo
from tests.helpers import running_manager, wait_for
from tests.integration.test_agent import Fleet, alive
from tests.integration.test_cli import run_cli

SLEEP = "echo up; exec sleep 1000"


@asynccontextmanager
async def fleet_with(tmp: Path, node_timeout: float) -> AsyncIterator[Fleet]:
    """A real manager with this node-timeout, and the agents the test starts (all stopped,
    each by itself, at the end)."""
    async with running_manager(tmp / "manager", node_timeout=node_timeout) as manager:
        fleet = Fleet(manager, tmp)
        try:
            yield fleet
        finally:
            for name in list(fleet.agents):
                await fleet.stop_agent(name)


def idle_repo(tmp: Path) -> Repo:
    return Repo.create(tmp / "repos" / "idle", {"README": "a project that only waits\n"})


def running_on(node: str) -> Any:
    return lambda p: p["status"] == "running" and p["node"] == node and alive(p["pid"])


async def node_label(fleet: Fleet, *args: str) -> str:
    """`syncopate node label ARGS` as a person runs it, against the fleet's manager."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCOPATE_")}
    env |= {"SYNCOPATE_MANAGER": fleet.manager.url, "SYNCOPATE_TOKEN": fleet.manager.token}
    done = await asyncio.to_thread(run_cli, "node", "label", *args, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_labels_steer_projects_with_real_agents(tmp_path: Path) -> None:
    repo = idle_repo(tmp_path)
    async with fleet_with(tmp_path, node_timeout=3.0) as fleet:
        await fleet.start_agent("lab", labels={"zone": "lab"})
        await fleet.start_agent("hall", labels={"zone": "hall"})
        async with fleet.manager.client() as ctl:
            assert (await ctl.nodes())["lab"]["labels"] == {"zone": "lab"}
            await ctl.add("sensor", repo.url, command=SLEEP, on=["zone=lab"])
            added = await ctl.add("trainer", repo.url, command=SLEEP, on=["gpu"])
        sensor = await fleet.until("sensor", running_on("lab"), "sensor to run on lab")
        assert added["projects"]["trainer"]["status"] == "unschedulable"
        assert added["projects"]["trainer"]["reason"] == "no live node meets constraint gpu"

        # A label arrives: the project waiting for it is placed there and runs.
        said = await node_label(fleet, "hall", "gpu=yes")
        assert "hall labels: gpu=yes, zone=hall" in said
        trainer = await fleet.until("trainer", running_on("hall"), "trainer to run on hall")

        # lab leaves the lab while hall joins it: sensor moves, its old process ends.
        await node_label(fleet, "hall", "zone=lab")
        await node_label(fleet, "lab", "--remove", "zone")
        moved = await fleet.until("sensor", running_on("hall"), "sensor to move to hall")
        assert moved["pid"] != sensor["pid"] and not alive(sensor["pid"])

        # No gpu left: back to unschedulable, with the reason, and its process ends.
        await node_label(fleet, "hall", "--remove", "gpu")
        waiting = await fleet.until(
            "trainer", lambda p: p["status"] == "unschedulable", "trainer to be unschedulable"
        )
        assert waiting["node"] is None
        assert waiting["reason"] == "no live node meets constraint gpu"
        await wait_for(
            lambda: asyncio.sleep(0, not alive(trainer["pid"])), what="trainer's process to end"
        )
        # What it says in `node list` and in the store.
        async with fleet.manager.client() as ctl:
            nodes = await ctl.nodes()
        assert nodes["lab"]["labels"] == {}
        assert nodes["hall"]["labels"] == {"zone": "lab"}
        assert fleet.manager.db_rows("nodes")["hall"]["labels"] == {"zone": "lab"}


def moves_to(store: SqlStore, node: str, names: list[str]) -> list[tuple[float, float]]:
    """(began, ended) of each finished move to `node`, from the manager's notes in the logs."""
    moves = []
    for name in names:
        began = ended = None
        for _, line, at in store.log_lines(name, 1000):
            if line.startswith(f"[syncopate] moving to {node}"):
                began = at
            elif line.startswith(f"[syncopate] moved to {node}") and began is not None:
                ended = at
        if began is not None and ended is not None:
            moves.append((began, ended))
    return moves


async def test_a_fresh_node_waits_to_settle_then_takes_balance_moves_one_at_a_time(
    tmp_path: Path,
) -> None:
    timeout = 1.5
    repo = idle_repo(tmp_path)
    async with fleet_with(tmp_path, node_timeout=timeout) as fleet:
        await fleet.start_agent("old")
        plain = [f"p{i}" for i in range(4)]
        async with fleet.manager.client() as ctl:
            for name in plain:
                await ctl.add(name, repo.url, command=SLEEP)
            await ctl.add("anchored", repo.url, command=SLEEP, stay=True)
            await ctl.add("device", repo.url, command=SLEEP, exclusive=True)
        for name in [*plain, "anchored", "device"]:
            await fleet.until(name, running_on("old"), f"{name} to run on old")

        await fleet.start_agent("new")
        cluster = fleet.manager.state.cluster
        settled_at = cluster.nodes["new"].alive_since + 2 * timeout
        before = after = 0  # observations before and after new had settled
        most_in_flight = 0

        async def balanced() -> bool:
            nonlocal before, after, most_in_flight
            async with fleet.manager.client() as ctl:
                projects = await ctl.status()
            seen = time.monotonic()  # the answer is at least this old: before it, no move
            bound = sorted(
                name for name, p in projects.items() if "new" in (p["node"], p["moving-to"])
            )
            if seen < settled_at:
                before += 1
                assert not bound, f"{bound} sent to new {settled_at - seen:.2f}s before it settled"
                return False
            after += 1
            in_flight = sum(p["moving-to"] == "new" for p in projects.values())
            most_in_flight = max(most_in_flight, in_flight)
            on_new = [n for n, p in projects.items() if running_on("new")(p)]
            return len(on_new) == 3

        await wait_for(balanced, timeout=30, interval=0.05, what="3 and 3 projects")
        assert before > 5, "too few looks before new settled to tell"
        assert most_in_flight <= 1
        # One at a time, from the manager's own notes in the projects' logs (the looks above
        # can miss a quick move under load): each move to new began after the last one ended.
        moves = sorted(moves_to(fleet.manager.state.store, "new", [*plain, "anchored", "device"]))
        assert len(moves) == 3, moves
        for (_, ended), (began, _) in itertools.pairwise(moves):
            assert began >= ended, moves
        async with fleet.manager.client() as ctl:
            projects = await ctl.status()
        # The --stay and the exclusive project never moved for balance.
        for name in ("anchored", "device"):
            assert projects[name]["node"] == "old" and projects[name]["epoch"] == 1
        assert sorted(n for n, p in projects.items() if p["node"] == "new") == sorted(
            n for n in plain if projects[n]["node"] == "new"
        )

"""The TUI benchmark's simulated fleet, in the main process: nodes joined through the node API,
projects added through the controller API, each node's projects reported running."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from harness.procs import PASSWORD, Manager

from syncopate.client import ManagerClient

NODE_CAPACITY_MB = 1_000_000.0  # every project fits anywhere
PROJECT_DISK_MB = 12.5  # the same on every project: placement stays even, no balance moves
IN_FLIGHT = 32  # node requests in flight while setting up
ADD_IN_FLIGHT = 8  # controller adds in flight


@dataclass
class Placed:
    node: str
    token: str
    url: str
    epoch: int


@dataclass
class Fleet:
    """The simulated nodes: names, tokens, and which project each holds (with its epoch)."""

    client: ManagerClient  # node side: no token, one connection pool for every node
    tokens: dict[str, str] = field(default_factory=dict)
    placed: dict[str, Placed] = field(default_factory=dict)
    ram: dict[str, float] = field(default_factory=dict)

    async def gather(self, calls: Iterator[Any], limit: int) -> list[Any]:
        gate = asyncio.Semaphore(limit)

        async def one(call: Any) -> Any:
            async with gate:
                return await call

        return list(await asyncio.gather(*(one(c) for c in calls)))

    async def join(self, count: int) -> None:
        async def join_one(i: int) -> None:
            name, token = await self.client.initialize(
                PASSWORD, f"node-{i:04d}", storage=NODE_CAPACITY_MB, ram=NODE_CAPACITY_MB
            )
            self.tokens[name] = token

        await self.gather((join_one(i) for i in range(count)), IN_FLIGHT)

    async def poll_all(self) -> None:
        async def poll(name: str) -> None:
            answer = await self.client.node_status(name, self.tokens[name])
            for project, info in answer.get("projects", {}).items():
                self.placed[project] = Placed(
                    name, self.tokens[name], str(info["project-url"]), int(info["epoch"])
                )

        await self.gather((poll(n) for n in self.tokens), IN_FLIGHT)

    async def report(self, project: str, ram: float, variables: int) -> None:
        where = self.placed[project]
        self.ram[project] = ram
        body = {
            "project-name": project,
            "project-url": where.url,
            "status": "running",
            "disk-usage": PROJECT_DISK_MB,
            "ram-usage": ram,
            "persistent-variables": {"n": variables},
            "epoch": where.epoch,
            "commit": f"{abs(hash(project)) % 16**10:010x}",
            "pid": 1000 + len(self.ram),
            "restarts": 0,
        }
        await self.client.node_update(where.node, where.token, body)

    async def report_all(self) -> None:
        calls = (
            self.report(p, 20.0 + (i % 200) * 0.5, 1) for i, p in enumerate(sorted(self.placed))
        )
        await self.gather(calls, IN_FLIGHT)


async def add_projects(controller: ManagerClient, count: int) -> list[str]:
    names = [f"proj-{i:05d}" for i in range(count)]
    failures: Counter[str] = Counter()
    pending = iter(names)

    async def adder() -> None:
        for name in pending:
            try:
                await controller.add(
                    name, f"file:///srv/{name}.git", initial_variables={"n": 0}, start=True
                )
            except Exception as exc:
                failures[f"{type(exc).__name__}: {exc}"[:120]] += 1

    await asyncio.gather(*(adder() for _ in range(ADD_IN_FLIGHT)))
    for reason, n in failures.most_common(3):
        print(f"    add failures: {n} x {reason}")
    return names


async def wait_running(controller: ManagerClient, count: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    running = 0
    while time.monotonic() < deadline:
        running = (await controller.health())["projects"].get("running", 0)
        if running >= count:
            break
        await asyncio.sleep(0.2)
    return int(running)


async def set_up(manager: Manager, args: argparse.Namespace) -> Fleet:
    fleet = Fleet(ManagerClient(manager.url))
    started = time.monotonic()
    await fleet.join(args.nodes)
    took = time.monotonic() - started
    print(f"  joined {len(fleet.tokens):,} nodes in {took:.1f} s ({IN_FLIGHT} in flight)")
    async with ManagerClient(manager.url, manager.token, timeout=120) as controller:
        started = time.monotonic()
        await add_projects(controller, args.projects)
        took = time.monotonic() - started
        print(
            f"  added {args.projects:,} projects in {took:.1f} s "
            f"({args.projects / took:,.0f} adds/s, {ADD_IN_FLIGHT} in flight)"
        )
        started = time.monotonic()
        await fleet.poll_all()
        await fleet.report_all()
        running = await wait_running(controller, args.projects)
        took = time.monotonic() - started
        status = await controller.status()
    per_node = Counter(str(p.get("node")) for p in status.values())
    moving = sum(1 for p in status.values() if p.get("moving-to"))
    print(
        f"  every node polled once and reported its projects running: {running:,}/"
        f"{args.projects:,} running after {took:.1f} s; projects per node "
        f"{min(per_node.values(), default=0)}..{max(per_node.values(), default=0)}, moving {moving}"
    )
    return fleet

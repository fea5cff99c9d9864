"""What runs in the fleet benchmark's worker processes (`fleet.py` spawns them): a share of
the simulated nodes, each joining by /node-initialize and then polling on its own schedule
(/node-status, then one /node-update per assigned project), and a `Recorder` of every
request's latency and every poll's lag, answered per measurement window on the main process's
command."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from array import array
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import aiohttp
from harness.procs import PASSWORD, raise_open_file_limit, receive

STATUS, UPDATE = "/node-status", "/node-update"
ROUTES = (STATUS, UPDATE)
JSON_HEADERS = {"Content-Type": "application/json"}
NODE_CAPACITY_MB = 1_000_000.0  # every project fits anywhere
PROJECT_RAM_MB = 25.0
# Reported disk use drives placement (least disk first); 0 keeps placement even while projects
# are added, so no balance moves are needed before measuring.
PROJECT_DISK_MB = 0.0
MAX_FAILURE_NOTES = 20_000


@dataclass
class SimNode:
    preferred: str
    phase: float  # seconds into each interval at which this node polls
    name: str = ""
    token: str = ""
    projects: dict[str, dict[str, Any]] = field(default_factory=dict)
    counter: int = 0
    last_contact: float = 0.0  # monotonic end of its last answered request
    in_request: bool = False
    task: asyncio.Task[None] | None = None


class Recorder:
    """Per-request samples (monotonic start, latency, ok) and per-cycle schedule lag."""

    def __init__(self) -> None:
        self.starts: dict[str, array[float]] = {r: array("d") for r in ROUTES}
        self.latencies: dict[str, array[float]] = {r: array("d") for r in ROUTES}
        self.failed: dict[str, array[float]] = {r: array("d") for r in ROUTES}
        self.notes: list[tuple[float, str]] = []
        self.lag_times: array[float] = array("d")
        self.lags: array[float] = array("d")

    def request(self, route: str, start: float, latency: float, failure: str | None) -> None:
        if failure is None:
            self.starts[route].append(start)
            self.latencies[route].append(latency)
        else:
            self.failed[route].append(start)
            if len(self.notes) < MAX_FAILURE_NOTES:
                self.notes.append((start, failure))

    def lag(self, at: float, late: float) -> None:
        self.lag_times.append(at)
        self.lags.append(late)

    def window(self, t0: float, t1: float) -> dict[str, Any]:
        def inside(times: array[float], values: array[float]) -> list[float]:
            return [v for t, v in zip(times, values, strict=True) if t0 <= t < t1]

        return {
            "latency": {r: inside(self.starts[r], self.latencies[r]) for r in ROUTES},
            "failed": {r: sum(1 for t in self.failed[r] if t0 <= t < t1) for r in ROUTES},
            "notes": Counter(note for t, note in self.notes if t0 <= t < t1),
            "lag": inside(self.lag_times, self.lags),
        }


class Worker:
    """One process's share of the fleet, driven by commands from the main process."""

    def __init__(self, conn: Connection, connections: int) -> None:
        self.conn = conn
        self.connections = connections
        self.url = ""
        self.interval = 5.0
        self.base = 0.0
        self.frozen = False  # reference run: keep the project mix, ignore the answers
        self.nodes: dict[str, SimNode] = {}
        self.mix: dict[str, dict[str, dict[str, Any]]] = {}
        self.record = Recorder()
        self.session: aiohttp.ClientSession | None = None

    async def serve(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.connections, keepalive_timeout=60)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            self.session = session
            while True:
                try:
                    command, *args = await receive(self.conn)
                except EOFError:
                    break
                if command == "stop":
                    break
                handler: Callable[..., Awaitable[Any]] = getattr(self, f"cmd_{command}")
                self.conn.send(await handler(*args))
            await self.cancel(list(self.nodes.values()))

    # commands ---------------------------------------------------------------------------------
    async def cmd_join(
        self, url: str, nodes: list[tuple[str, float]], interval: float, base: float, limit: int
    ) -> dict[str, Any]:
        self.url, self.interval, self.base = url, interval, base
        gate = asyncio.Semaphore(limit)
        failures: Counter[str] = Counter()
        sims = [SimNode(preferred, phase) for preferred, phase in nodes]
        await asyncio.gather(*(self.join(sim, gate, failures) for sim in sims))
        return {"names": [s.name for s in sims if s.name], "failures": failures}

    async def cmd_stats(self, t0: float, t1: float) -> dict[str, Any]:
        """The window's samples; the request mix is kept for a later reference run."""
        self.mix = {s.name: dict(s.projects) for s in self.nodes.values()}
        return self.record.window(t0, t1)

    async def cmd_silence(self, names: list[str]) -> dict[str, float]:
        """Stop these nodes; answer when each went silent (end of its last answered request)."""
        now = time.monotonic()
        sims = [self.nodes[n] for n in names if n in self.nodes]
        silent_at = {s.name: now if s.in_request else s.last_contact for s in sims}
        await self.cancel(sims)
        return silent_at

    async def cmd_retarget(self, url: str) -> int:
        """Send every node's traffic to another server, keeping each node's project mix."""
        await self.cancel(list(self.nodes.values()))
        self.url, self.frozen, self.record = url, True, Recorder()
        self.base = time.monotonic()
        for sim in self.nodes.values():
            sim.projects = self.mix.get(sim.name, sim.projects)
            self.start(sim)
        return len(self.nodes)

    # the nodes --------------------------------------------------------------------------------
    async def join(self, sim: SimNode, gate: asyncio.Semaphore, failures: Counter[str]) -> None:
        body = {
            "preferred-name": sim.preferred,
            "syncopate-password": PASSWORD,
            "storage": NODE_CAPACITY_MB,
            "ram": NODE_CAPACITY_MB,
        }
        assert self.session is not None
        async with gate:
            try:
                async with self.session.post(f"{self.url}/node-initialize", json=body) as resp:
                    answer = await resp.json()
                    if resp.status != 200:
                        failures[f"HTTP {resp.status}: {answer.get('failure-reasoning')}"] += 1
                        return
            except (aiohttp.ClientError, TimeoutError) as exc:
                failures[type(exc).__name__] += 1
                return
        sim.name, sim.token = answer["name"], answer["access-token"]
        self.nodes[sim.name] = sim
        self.start(sim)

    def start(self, sim: SimNode) -> None:
        sim.task = asyncio.create_task(self.run_node(sim))

    async def cancel(self, sims: list[SimNode]) -> None:
        tasks = [s.task for s in sims if s.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for sim in sims:
            sim.task = None
            sim.in_request = False

    async def run_node(self, sim: SimNode) -> None:
        """Poll at base + phase + k * interval; a slot missed while behind is skipped."""
        now = time.monotonic()
        slot = self.base + sim.phase
        if slot < now:
            slot += ((now - slot) // self.interval + 1) * self.interval
        while True:
            await asyncio.sleep(max(0.0, slot - time.monotonic()))
            began = time.monotonic()
            self.record.lag(began, began - slot)
            await self.cycle(sim)
            slot += self.interval
            while slot < time.monotonic():
                slot += self.interval

    async def cycle(self, sim: SimNode) -> None:
        answer = await self.post(sim, STATUS, {"name": sim.name, "access-token": sim.token})
        if answer is not None and not self.frozen:
            sim.projects = answer.get("projects", {})
        for project in list(sim.projects.values()):
            sim.counter += 1
            report = {
                "access-token": sim.token,
                "name": sim.name,
                "project-name": project["project-name"],
                "project-url": project["project-url"],
                # A move asks the node to stop the project first; the node obeys.
                "status": "stopped" if project.get("desired") == "stopped" else "running",
                "disk-usage": PROJECT_DISK_MB,
                "ram-usage": PROJECT_RAM_MB,
                "persistent-variables": {"n": sim.counter},
                "epoch": project.get("epoch"),
            }
            await self.post(sim, UPDATE, report)

    async def post(self, sim: SimNode, route: str, body: dict[str, Any]) -> dict[str, Any] | None:
        assert self.session is not None
        data = json.dumps(body, separators=(",", ":")).encode()
        failure: str | None = None
        answer: dict[str, Any] | None = None
        sim.in_request = True
        start = time.monotonic()
        try:
            async with self.session.post(self.url + route, data=data, headers=JSON_HEADERS) as r:
                raw = await r.read()
                if r.status == 200:
                    answer = json.loads(raw)
                else:
                    failure = f"{route} HTTP {r.status}: {raw[:160].decode(errors='replace')}"
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            failure = f"{route} {type(exc).__name__}: {exc}"[:200]
        end = time.monotonic()
        sim.in_request = False
        if failure is None:
            sim.last_contact = end
        self.record.request(route, start, end - start, failure)
        return answer


def worker_main(conn: Connection, connections: int, nofile: int) -> None:
    """Entry point of a worker process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process ends us
    raise_open_file_limit(nofile)
    asyncio.run(Worker(conn, connections).serve())

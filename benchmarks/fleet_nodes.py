"""What runs in the fleet benchmark's worker processes (`fleet.py` spawns them): a share of
the simulated nodes, each joining by /node-initialize and then sending one of two traffic
patterns, and a `Recorder` (fleet_record.py) of what it saw, answered per measurement window on
the main process's command.

- `seed`: the seed's client. Every interval, on the node's own phase: /node-status without
  `wait`, then one /node-update per assigned project.
- `agent`: our agent after issue 18. /node-status with `wait` (the server holds it, up to
  0.3 x node-timeout) carrying `reports`, one per assigned project; a new poll as soon as the
  answer arrives, so one request per hold per node and nothing else. A held poll's latency is
  its time minus the answer's `held`; an answer without `held` is remarked, its raw time kept.
"""

from __future__ import annotations

import asyncio
import gc
import json
import random
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import aiohttp
from fleet_record import STATUS, UPDATE, Recorder
from harness.procs import PASSWORD, raise_open_file_limit, receive

JSON_HEADERS = {"Content-Type": "application/json"}
NODE_CAPACITY_MB = 1_000_000.0  # every project fits anywhere
PROJECT_RAM_MB = 25.0
# Reported disk use drives placement (least disk first); 0 keeps placement even while projects
# are added, so no balance moves are needed before measuring.
PROJECT_DISK_MB = 0.0
TICK = 0.1  # s between the agent pattern's event-loop lag probes
RETRY = 1.0  # s an agent-pattern node waits after a failed poll (the agent backs off too)


@dataclass(frozen=True)
class Traffic:
    """How the simulated nodes talk (the same in every worker)."""

    pattern: str  # "seed" or "agent"
    interval: float  # seed: s between polls; agent: the `wait` asked on each poll
    connections: int  # the worker's connection pool; agent: >= its nodes (each holds one)
    vary: float = 1.0  # share of reports whose persistent variables changed since the last
    # As the agent does: an answer a standby forwarded names the leader (Syncopate-Leader),
    # and the node sends its requests there from then on. False: every request through the
    # manager the node joined (as an agent given that manager's URL alone).
    follow_leader: bool = True


@dataclass
class SimNode:
    preferred: str
    phase: float  # seconds into each interval at which this node polls (first polls, agent)
    name: str = ""
    token: str = ""
    projects: dict[str, dict[str, Any]] = field(default_factory=dict)
    counter: int = 0
    last_contact: float = 0.0  # monotonic end of its last answered request
    in_request: bool = False
    sent: float = 0.0  # monotonic start of its latest request
    task: asyncio.Task[None] | None = None
    leader: str = ""  # the leader a forwarded answer named ("": the worker's URL)


class Worker:
    """One process's share of the fleet, driven by commands from the main process."""

    def __init__(self, conn: Connection, traffic: Traffic) -> None:
        self.conn = conn
        self.traffic = traffic
        self.url = ""
        self.base = 0.0
        self.frozen = False  # reference run: keep the project mix, ignore the answers
        self.nodes: dict[str, SimNode] = {}
        self.mix: dict[str, dict[str, dict[str, Any]]] = {}
        self.record = Recorder()
        self.session: aiohttp.ClientSession | None = None
        self.random = random.Random(1)  # the same reports change in every run
        self.gc_started = 0.0
        gc.callbacks.append(self.gc_timer)

    def gc_timer(self, phase: str, info: dict[str, Any]) -> None:
        """Time the garbage collector's pauses: a long one stalls every simulated node."""
        if phase == "start":
            self.gc_started = time.monotonic()
        else:
            now = time.monotonic()
            self.record.gc_pause(now, now - self.gc_started)

    @property
    def interval(self) -> float:
        return self.traffic.interval

    async def serve(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.traffic.connections, keepalive_timeout=60)
        timeout = aiohttp.ClientTimeout(total=120)
        ticker = asyncio.create_task(self.tick()) if self.traffic.pattern == "agent" else None
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
        if ticker is not None:
            ticker.cancel()

    async def tick(self) -> None:
        """The agent pattern has no schedule to be late on: probe the event loop's lag."""
        while True:
            due = time.monotonic() + TICK
            await asyncio.sleep(TICK)
            now = time.monotonic()
            self.record.lag(now, now - due)

    # commands ---------------------------------------------------------------------------------
    async def cmd_join(
        self, url: str, nodes: list[tuple[str, float]], base: float, limit: int, deadline: float
    ) -> dict[str, Any]:
        """Join these nodes, `limit` at a time; none starts after `deadline` (monotonic: one
        clock for every process on the machine)."""
        self.url, self.base = url, base
        gate = asyncio.Semaphore(limit)
        failures: Counter[str] = Counter()
        sims = [SimNode(preferred, phase) for preferred, phase in nodes]
        await asyncio.gather(*(self.join(sim, gate, failures, deadline) for sim in sims))
        # The fleet's objects live as long as the run: frozen, the collector's full passes
        # stop walking them (a pause stalls every node of the worker at once). On the loaded
        # shared machine the pauses (printed per window) did not clearly shrink with it.
        gc.collect()
        gc.freeze()
        # Fewer young collections, fewer requests promoted to the old generation whose full
        # collections paused a worker for up to 470 ms at 10,000 nodes (the manager does the
        # same: syncopate/manager/gc_pauses.py).
        gc.set_threshold(50_000, *gc.get_threshold()[1:])
        return {"names": [s.name for s in sims if s.name], "failures": failures}

    async def cmd_stats(self, t0: float, t1: float) -> dict[str, Any]:
        """The window's samples; the request mix is kept for a later reference run."""
        self.mix = {s.name: dict(s.projects) for s in self.nodes.values()}
        return self.record.window(t0, t1)

    async def cmd_silence(self, names: list[str]) -> dict[str, float]:
        """Stop these nodes; answer when each went silent: the end of its last answered request,
        or for one in a request now (seed) or when that poll left (agent: a held poll cut off
        is contact at its arrival only, the manager counts no contact at its end)."""
        now = time.monotonic()
        sims = [self.nodes[n] for n in names if n in self.nodes]
        held = self.traffic.pattern == "agent"
        silent_at = {
            s.name: (s.sent if held else now) if s.in_request else s.last_contact for s in sims
        }
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
    async def join(
        self, sim: SimNode, gate: asyncio.Semaphore, failures: Counter[str], deadline: float
    ) -> None:
        body = {
            "preferred-name": sim.preferred,
            "syncopate-password": PASSWORD,
            "storage": NODE_CAPACITY_MB,
            "ram": NODE_CAPACITY_MB,
        }
        assert self.session is not None
        async with gate:
            if time.monotonic() >= deadline:
                return
            try:
                async with self.session.post(f"{self.url}/node-initialize", json=body) as resp:
                    self.follow(sim, resp)
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
        run = self.run_agent if self.traffic.pattern == "agent" else self.run_seed
        sim.task = asyncio.create_task(run(sim))

    async def cancel(self, sims: list[SimNode]) -> None:
        tasks = [s.task for s in sims if s.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for sim in sims:
            sim.task = None
            sim.in_request = False

    async def run_seed(self, sim: SimNode) -> None:
        """Poll at base + phase + k * interval; a slot missed while behind is skipped."""
        now = time.monotonic()
        slot = self.base + sim.phase
        if slot < now:
            slot += ((now - slot) // self.interval + 1) * self.interval
        while True:
            await asyncio.sleep(max(0.0, slot - time.monotonic()))
            began = time.monotonic()
            self.record.lag(began, began - slot)
            await self.seed_cycle(sim)
            slot += self.interval
            while slot < time.monotonic():
                slot += self.interval

    async def seed_cycle(self, sim: SimNode) -> None:
        answer = await self.post(sim, STATUS, {"name": sim.name, "access-token": sim.token})
        if answer is not None and not self.frozen:
            sim.projects = answer.get("projects", {})
        for project in list(sim.projects.values()):
            report = {"access-token": sim.token, "name": sim.name, **self.report(sim, project)}
            await self.post(sim, UPDATE, report)

    async def run_agent(self, sim: SimNode) -> None:
        """The first poll at base + phase (spread like the seed's), then one after another."""
        await asyncio.sleep(max(0.0, self.base + sim.phase - time.monotonic()))
        while True:
            body = {
                "name": sim.name,
                "access-token": sim.token,
                "wait": self.interval,
                "reports": [self.report(sim, p) for p in list(sim.projects.values())],
            }
            answer = await self.post(sim, STATUS, body)
            if answer is None:
                await asyncio.sleep(RETRY)
                continue
            if not self.frozen:
                sim.projects = answer.get("projects", {})
            for info in (answer.get("refused") or {}).values():
                code = info.get("code") if isinstance(info, dict) else info
                self.record.remark(time.monotonic(), f"report refused on the poll: {code}")

    def report(self, sim: SimNode, project: dict[str, Any]) -> dict[str, Any]:
        """A project's report (a /node-update body without the node's name and token); its
        variables change in a `vary` share of reports (usage never changes)."""
        if self.traffic.vary >= 1.0 or self.random.random() < self.traffic.vary:
            sim.counter += 1
        return {
            "project-name": project["project-name"],
            "project-url": project["project-url"],
            # A move asks the node to stop the project first; the node obeys.
            "status": "stopped" if project.get("desired") == "stopped" else "running",
            "disk-usage": PROJECT_DISK_MB,
            "ram-usage": PROJECT_RAM_MB,
            "persistent-variables": {"n": sim.counter},
            "epoch": project.get("epoch"),
        }

    async def post(self, sim: SimNode, route: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """Send one request and record it; a held poll's latency leaves out the hold."""
        assert self.session is not None
        data = json.dumps(body, separators=(",", ":")).encode()
        failure: str | None = None
        answer: dict[str, Any] | None = None
        sim.in_request = True
        start = sim.sent = time.monotonic()
        try:
            url = sim.leader or self.url
            async with self.session.post(url + route, data=data, headers=JSON_HEADERS) as r:
                self.follow(sim, r)
                raw = await r.read()
                if r.status == 200:
                    answer = json.loads(raw)
                else:
                    failure = f"{route} HTTP {r.status}: {raw[:160].decode(errors='replace')}"
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            failure = f"{route} {type(exc).__name__}: {exc}"[:200]
            sim.leader = ""  # as the agent does: back to the manager it was given
        end = time.monotonic()
        sim.in_request = False
        latency = end - start
        if failure is None:
            sim.last_contact = end
            if "wait" in body:
                latency = self.unheld(answer or {}, end, latency)
        self.record.request(route, end, latency, failure)
        return answer

    def follow(self, sim: SimNode, response: aiohttp.ClientResponse) -> None:
        """Go to the leader a good answer names, as the agent does (its URLs are the two
        managers': the header only ever names one of them here)."""
        leader = response.headers.get("Syncopate-Leader")
        if self.traffic.follow_leader and leader and response.status == 200:
            sim.leader = leader.rstrip("/")

    def unheld(self, answer: dict[str, Any], end: float, latency: float) -> float:
        held = answer.get("held")
        if not isinstance(held, int | float):
            self.record.remark(end, "answer without `held` (an older manager): raw time kept")
            return latency
        self.record.held(end, float(held))
        return max(0.0, latency - float(held))


def worker_main(conn: Connection, traffic: Traffic, nofile: int) -> None:
    """Entry point of a worker process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process ends us
    raise_open_file_limit(nofile)
    asyncio.run(Worker(conn, traffic).serve())

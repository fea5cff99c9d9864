"""The fleet benchmark's setup of one size: the worker processes seen from the main process,
the nodes' joins, the projects' adds (timed: adds/s is a target), the wait until they run,
and single adds timed alone under the fleet's load (one placement and its write)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from harness.procs import Child
from harness.stats import cpu_seconds, ms, percentile

JOINS_IN_FLIGHT = 32
SINGLE_ADDS = 5  # adds timed one at a time after the fleet settled


@dataclass
class Workers:
    children: list[Child]

    async def ask(self, command: str, *args: Any) -> list[Any]:
        """Send one command to every worker; gather the answers."""
        return list(await asyncio.gather(*(c.ask(command, *args) for c in self.children)))

    def cpu(self) -> list[float]:
        """CPU seconds each worker used so far."""
        return [cpu_seconds(c.pid) for c in self.children]

    def stop(self) -> None:
        for child in self.children:
            with contextlib.suppress(OSError):
                child.conn.send(("stop",))
        for child in self.children:
            child.end(wait=3)


@dataclass
class Setup:
    """What the setup of one size measured (the targets' adds/s and one add's time)."""

    joined: int = 0
    join_seconds: float = 0.0
    added: int = 0
    add_seconds: float = 0.0
    single_add: float = float("nan")  # median client-side time of one add alone
    single_add_handler: float = float("nan")  # the manager's own time for them (/metrics)
    # The manager's own time placing one project (/metrics), mean over the single adds under
    # load: the placement target's figure (the handler's time also holds the write and waits).
    placement: float = float("nan")
    placement_all: float = float("nan")  # the same, mean over every placement since start
    settled: bool = False
    older_manager: bool = False  # agent pattern: no `held` in the answers

    @property
    def adds_per_second(self) -> float:
        return self.added / self.add_seconds if self.add_seconds else float("nan")


@dataclass
class Bench:
    args: argparse.Namespace
    http: aiohttp.ClientSession
    workers: Workers
    nodes: int  # this size's
    projects: int  # this size's, to add
    url: str = ""
    token: str = ""
    names: list[list[str]] = field(default_factory=list)  # joined node names, per worker
    # The manager URL each worker's nodes use (several managers sharing a database: they
    # share the nodes); empty: `url` for all.
    worker_urls: list[str] = field(default_factory=list)
    setup: Setup = field(default_factory=Setup)

    async def controller(self, action: str, **fields: Any) -> tuple[int, dict[str, Any]]:
        body = {"access-token": self.token, "action": action, **fields}
        async with self.http.post(f"{self.url}/controller", json=body) as resp:
            return resp.status, await resp.json()

    async def health(self) -> dict[str, Any]:
        async with self.http.get(f"{self.url}/health") as resp:
            answer: dict[str, Any] = await resp.json()
            return answer

    async def placement_time(self) -> tuple[float, float]:
        """(seconds, count) the manager spent placing one project at a time so far (/metrics;
        nan, 0 from a manager without them)."""
        async with self.http.get(f"{self.url}/metrics") as resp:
            text = await resp.text()
        found = {
            "syncopate_placement_seconds_total": float("nan"),
            "syncopate_placements_total": 0.0,
        }
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name in found:
                found[name] = float(value)
        return found["syncopate_placement_seconds_total"], found["syncopate_placements_total"]

    async def route_time(self, route: str) -> tuple[float, float]:
        """(sum, count) of the manager's own handler time for a route, from /metrics."""
        async with self.http.get(f"{self.url}/metrics") as resp:
            text = await resp.text()
        prefix = "syncopate_http_request_duration_seconds_"
        found = {"sum": 0.0, "count": 0.0}
        for line in text.splitlines():
            for key in found:
                if line.startswith(f'{prefix}{key}{{route="{route}"}} '):
                    found[key] = float(line.rsplit(" ", 1)[1])
        return found["sum"], found["count"]


async def join_nodes(bench: Bench) -> None:
    """Join the size's nodes, phases spread over one interval; stop joining at --join-limit."""
    args, count = bench.args, len(bench.workers.children)
    base = time.monotonic() + 1.0
    shares: list[list[tuple[str, float]]] = [[] for _ in range(count)]
    for i in range(bench.nodes):
        shares[i % count].append((f"sim-{i:05d}", i * args.interval / bench.nodes))
    started = time.monotonic()
    deadline = started + args.join_limit
    children = zip(bench.workers.children, shares, strict=True)
    urls = bench.worker_urls or [bench.url] * count
    joins = (
        c.ask("join", urls[i], s, base, JOINS_IN_FLIGHT, deadline)
        for i, (c, s) in enumerate(children)
    )
    answers = await asyncio.gather(*joins)
    took = time.monotonic() - started
    bench.names = [a["names"] for a in answers]
    joined = sum(len(n) for n in bench.names)
    bench.setup.joined, bench.setup.join_seconds = joined, took
    failures: Counter[str] = sum((a["failures"] for a in answers), Counter())
    print(
        f"  join {joined:,} nodes: {took:.1f} s ({joined / took:,.0f} joins/s, "
        f"{JOINS_IN_FLIGHT} in flight per worker)"
    )
    if joined < bench.nodes:
        print(f"  NOTE: {bench.nodes - joined:,} nodes not joined (--join-limit or failures)")
    for reason, n in failures.most_common(5):
        print(f"    join failures: {n} x {reason}")


async def add_projects(bench: Bench) -> None:
    """Add the projects with several requests in flight, until --add-limit s; time them, and
    each tenth of them (the cost of an add may grow with the fleet)."""
    args = bench.args
    pending = iter(range(1, bench.projects + 1))
    latencies: list[float] = []
    failures: Counter[str] = Counter()
    tenth = max(1, bench.projects // 10)
    started = last_mark = time.monotonic()
    deadline = started + args.add_limit

    async def adder() -> None:
        nonlocal last_mark
        for i in pending:
            if time.monotonic() >= deadline:
                return
            status, answer = await add_one(bench, f"p-{i:05d}", latencies)
            if status != 200:
                failures[f"HTTP {status}: {answer.get('request-information')}"] += 1
            if len(latencies) % tenth == 0:
                now, recent = time.monotonic(), latencies[-tenth:]
                print(
                    f"    {len(latencies):>7,} added at {now - started:6.1f} s; the last "
                    f"{tenth:,}: {tenth / (now - last_mark):,.0f} adds/s, "
                    f"p50 {ms(percentile(recent, 0.5))}",
                    flush=True,
                )
                last_mark = now

    await asyncio.gather(*(adder() for _ in range(args.add_concurrency)))
    took = time.monotonic() - started
    done = len(latencies) - sum(failures.values())
    bench.setup.added, bench.setup.add_seconds = done, took
    print(
        f"  add {done:,} projects: {took:.1f} s ({done / took:,.0f} adds/s, "
        f"{args.add_concurrency} in flight), errors {sum(failures.values())}"
    )
    if len(latencies) < bench.projects:
        print(
            f"  NOTE: --add-limit {args.add_limit:g} s reached: {len(latencies):,} of "
            f"{bench.projects:,} adds sent; the run goes on with those"
        )
    for reason, n in failures.most_common(5):
        print(f"    add failures: {n} x {reason}")


async def add_one(bench: Bench, name: str, latencies: list[float]) -> tuple[int, dict[str, Any]]:
    project = {"name": name, "url": f"file:///srv/{name}.git", "initial_variables": {"n": 0}}
    start = time.monotonic()
    status, answer = await bench.controller("add", project=project)
    latencies.append(time.monotonic() - start)
    return status, answer


async def single_adds(bench: Bench) -> None:
    """A few adds one at a time under the fleet's load: one placement and its durable write
    (the client's time, and the manager's own from /metrics, which leaves out the queue)."""
    latencies: list[float] = []
    sum0, count0 = await bench.route_time("/controller")
    placing0, placed0 = await bench.placement_time()
    for i in range(SINGLE_ADDS):
        status, _ = await add_one(bench, f"single-{i}", latencies)
        if status == 200:
            bench.setup.added += 1
    sum1, count1 = await bench.route_time("/controller")
    bench.setup.single_add = statistics.median(latencies)
    handler = (sum1 - sum0) / max(1.0, count1 - count0)
    bench.setup.single_add_handler = handler
    placing, placed = await bench.placement_time()
    single = placed - placed0
    bench.setup.placement = (placing - placing0) / single if single else float("nan")
    bench.setup.placement_all = placing / placed if placed else float("nan")
    print(
        f"  {SINGLE_ADDS} single adds under load: median {ms(bench.setup.single_add, 2)} "
        f"(client), the manager's handler mean {ms(handler, 2)} (placement, write, waits); "
        f"placement alone: mean {1e6 * bench.setup.placement:.1f} us ({single:.0f} placements), "
        f"{1e6 * bench.setup.placement_all:.1f} us over all {placed:,.0f} since start"
    )


async def settle(bench: Bench) -> None:
    """Wait until every added project is reported running (not for an older manager under the
    agent pattern: it ignores the reports on the poll), then one more interval."""
    args, setup = bench.args, bench.setup
    started = time.monotonic()
    deadline = started + max(args.settle_limit, 10 * args.interval)
    running = 0
    while time.monotonic() < deadline:
        running = (await bench.health())["projects"].get("running", 0)
        if running >= setup.added:
            break
        if args.pattern == "agent" and await answers_without_held(bench):
            setup.older_manager = True
            break
        await asyncio.sleep(1.0)
    took = time.monotonic() - started
    setup.settled = running >= setup.added
    state = "all" if setup.settled else "NOT all"
    await asyncio.sleep(args.interval)
    _, answer = await bench.controller("status")
    projects = answer.get("projects", {}).values()
    moving = sum(1 for p in projects if p.get("moving-to"))
    per_node = Counter(p.get("node") for p in projects if p.get("node"))
    counts = per_node.values() or [0]
    print(
        f"  settle: {state} {running:,}/{setup.added:,} running after {took:.1f} s; moving "
        f"{moving}; projects per node min {min(counts)} max {max(counts)}"
    )
    if setup.older_manager:
        print(
            "  NOTE: the manager's /node-status answers carry no `held`: an older manager, "
            "which ignores `reports` (projects never run) and answers held polls without "
            "saying how long it held them: latencies below are raw times, hold included"
        )


async def answers_without_held(bench: Bench) -> bool:
    """True when the polls answered in the last two holds carried no `held`."""
    now = time.monotonic()
    since = now - 2 * bench.args.hold - 1
    stats = await bench.workers.ask("stats", since, now)
    held = sum(len(s["held"]) for s in stats)
    without = sum(n for s in stats for text, n in s["remarks"].items() if "without `held`" in text)
    return without > 0 and held == 0

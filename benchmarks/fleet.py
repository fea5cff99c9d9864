"""Fleet benchmark: a Syncopate manager under a simulated fleet, next to a bare aiohttp handler.

    python benchmarks/fleet.py                       # 5,000 nodes, 10,000 projects (minutes)
    python benchmarks/fleet.py --nodes 200 --projects 400 --interval 1 --node-timeout 3

It starts a manager subprocess on 127.0.0.1, joins N simulated nodes (asyncio + aiohttp in a
few worker processes), adds M projects through /controller, lets the fleet settle, then measures
plain polling (/node-status, then one /node-update per assigned project, every --interval
seconds, phases spread evenly). Then it silences a few nodes and times their detection as dead,
and drives a bare aiohttp server with the same load as a reference. It prints figures, not
pass/fail of a test suite; all subprocesses are ended on exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import socket
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from aiohttp import web
from fleet_dead import detect_dead
from fleet_nodes import ROUTES, worker_main
from harness.procs import (
    HOST,
    PY,
    Child,
    Processes,
    raise_open_file_limit,
    run_main,
    start_manager,
    wait_for_line,
)
from harness.stats import (
    cpu_seconds,
    ms,
    percentile,
    print_header,
    print_targets,
    syncopate_version,
)


# --- the bare reference server (a subprocess: `fleet.py --bare-server`) ---------------------------
def serve_bare() -> None:
    """A tiny aiohttp app: POST anything, the JSON body is parsed, a small JSON comes back."""

    async def handle(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        return web.json_response({"result": "success", "name": body.get("name", "")})

    app = web.Application()
    app.router.add_post("/{route:.*}", handle)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    print(f"bare server listening on http://{HOST}:{sock.getsockname()[1]}", flush=True)
    web.run_app(app, sock=sock, access_log=None, print=None, backlog=1024)


# --- the worker processes, from the main process ---
@dataclass
class Workers:
    children: list[Child]

    async def ask(self, command: str, *args: Any) -> list[Any]:
        """Send one command to every worker; gather the answers."""
        return list(await asyncio.gather(*(c.ask(command, *args) for c in self.children)))

    def cpu(self) -> float:
        """CPU seconds the workers used so far."""
        return sum(cpu_seconds(c.pid) for c in self.children)

    def stop(self) -> None:
        for child in self.children:
            with contextlib.suppress(OSError):
                child.conn.send(("stop",))
        for child in self.children:
            child.end(wait=3)


def start_bare(procs: Processes, tmp: Path) -> tuple[int, str]:
    proc = procs.start([PY, str(Path(__file__).resolve()), "--bare-server"], tmp / "bare.log")
    return proc.pid, wait_for_line(proc, tmp / "bare.log", r"bare server listening on (\S+)", 30)


# --- the main process's phases --------------------------------------------------------------------
@dataclass
class Bench:
    args: argparse.Namespace
    http: aiohttp.ClientSession
    workers: Workers
    url: str = ""
    token: str = ""
    names: list[list[str]] = field(default_factory=list)  # joined node names, per worker

    async def controller(self, action: str, **fields: Any) -> tuple[int, dict[str, Any]]:
        body = {"access-token": self.token, "action": action, **fields}
        async with self.http.post(f"{self.url}/controller", json=body) as resp:
            return resp.status, await resp.json()

    async def health(self) -> dict[str, Any]:
        async with self.http.get(f"{self.url}/health") as resp:
            answer: dict[str, Any] = await resp.json()
            return answer


async def join_nodes(bench: Bench) -> None:
    args = bench.args
    count = args.workers
    base = time.monotonic() + 1.0
    shares: list[list[tuple[str, float]]] = [[] for _ in range(count)]
    for i in range(args.nodes):
        shares[i % count].append((f"sim-{i:05d}", i * args.interval / args.nodes))
    started = time.monotonic()
    children = zip(bench.workers.children, shares, strict=True)
    joins = (c.ask("join", bench.url, share, args.interval, base, 32) for c, share in children)
    answers = await asyncio.gather(*joins)
    took = time.monotonic() - started
    bench.names = [a["names"] for a in answers]
    joined = sum(len(n) for n in bench.names)
    failures: Counter[str] = sum((a["failures"] for a in answers), Counter())
    print(f"  join {joined:,} nodes: {took:.1f} s ({joined / took:,.0f} joins/s, 32 in flight)")
    for reason, n in failures.most_common(5):
        print(f"    join failures: {n} x {reason}")


async def add_projects(bench: Bench) -> None:
    """Add M projects with several requests in flight; time them, and each tenth of them."""
    args = bench.args
    pending = iter(range(1, args.projects + 1))
    latencies: list[float] = []
    failures: Counter[str] = Counter()
    tenth = max(1, args.projects // 10)
    started = last_mark = time.monotonic()

    async def adder() -> None:
        nonlocal last_mark
        for i in pending:
            project = {
                "name": f"p-{i:05d}",
                "url": f"file:///srv/p-{i:05d}.git",
                "initial_variables": {"n": 0},
            }
            start = time.monotonic()
            status, answer = await bench.controller("add", project=project)
            latencies.append(time.monotonic() - start)
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
    done = len(latencies)
    print(
        f"  add {done:,} projects: {took:.1f} s ({done / took:,.0f} adds/s, "
        f"{args.add_concurrency} in flight), errors {sum(failures.values())}"
    )
    for reason, n in failures.most_common(5):
        print(f"    add failures: {n} x {reason}")


async def settle(bench: Bench) -> None:
    """Wait until every project is reported running, then one more interval."""
    args = bench.args
    started = time.monotonic()
    deadline = started + max(120.0, 10 * args.interval)
    running = 0
    while time.monotonic() < deadline:
        running = (await bench.health())["projects"].get("running", 0)
        if running >= args.projects:
            break
        await asyncio.sleep(1.0)
    took = time.monotonic() - started
    state = "all" if running >= args.projects else "NOT all (timed out)"
    print(f"  settle: {state} {running:,}/{args.projects:,} running after {took:.1f} s", end="")
    await asyncio.sleep(args.interval)
    _, answer = await bench.controller("status")
    projects = answer.get("projects", {}).values()
    moving = sum(1 for p in projects if p.get("moving-to"))
    per_node = Counter(p.get("node") for p in projects if p.get("node"))
    counts = per_node.values() or [0]
    print(f"; moving {moving}; projects per node min {min(counts)} max {max(counts)}")


@dataclass
class Window:
    """What one measurement window saw."""

    label: str
    seconds: float
    latency: dict[str, list[float]]
    failed: int
    notes: Counter[str]
    lag: list[float]
    cpu_seconds: float
    rss_max: int
    client_cpu: float
    server_time: dict[str, float] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return sum(len(v) for v in self.latency.values()) + self.failed

    @property
    def cpu_per_request(self) -> float:
        return self.cpu_seconds / max(1, self.requests)


async def server_metrics(bench: Bench) -> dict[str, tuple[float, float]]:
    """(sum, count) of the manager's own handler time per node route, from /metrics."""
    async with bench.http.get(f"{bench.url}/metrics") as resp:
        text = await resp.text()
    found = {}
    for route in ROUTES:
        pattern = r'duration_seconds_(sum|count)\{route="' + re.escape(route) + r'"\} (\S+)'
        values = dict(re.findall(pattern, text))
        found[route] = (float(values.get("sum", 0)), float(values.get("count", 0)))
    return found


async def measure(bench: Bench, label: str, pid: int, metrics: bool) -> Window:
    """Run one window: server CPU and RSS by psutil, client latencies from the workers."""
    args = bench.args
    server = psutil.Process(pid)
    before = await server_metrics(bench) if metrics else {}
    t0, cpu0, client0 = time.monotonic(), cpu_seconds(pid), bench.workers.cpu()
    rss_max = 0
    while time.monotonic() - t0 < args.duration:
        rss_max = max(rss_max, server.memory_info().rss)
        await asyncio.sleep(min(1.0, max(0.0, args.duration - (time.monotonic() - t0))))
    t1, cpu1, client1 = time.monotonic(), cpu_seconds(pid), bench.workers.cpu()
    rss_max = max(rss_max, server.memory_info().rss)
    after = await server_metrics(bench) if metrics else {}
    stats = await bench.workers.ask("stats", t0, t1)
    window = Window(
        label=label,
        seconds=t1 - t0,
        latency={r: [x for s in stats for x in s["latency"][r]] for r in ROUTES},
        failed=sum(sum(s["failed"].values()) for s in stats),
        notes=sum((s["notes"] for s in stats), Counter()),
        lag=[x for s in stats for x in s["lag"]],
        cpu_seconds=cpu1 - cpu0,
        rss_max=rss_max,
        client_cpu=(client1 - client0) / (t1 - t0),
    )
    for route in before:
        calls = after[route][1] - before[route][1]
        window.server_time[route] = (after[route][0] - before[route][0]) / max(1.0, calls)
    return window


def print_window(window: Window, args: argparse.Namespace, expected_rate: float) -> None:
    rate = window.requests / window.seconds
    print(
        f"  requests: {window.requests:,} in {window.seconds:.1f} s = {rate:,.0f} req/s "
        f"(load offered: {expected_rate:,.0f} req/s); errors: {window.failed}"
    )
    for route in ROUTES:
        values = window.latency[route]
        handler = window.server_time.get(route)
        extra = (
            f"; handler time in the manager (its /metrics) mean {ms(handler)}" if handler else ""
        )
        print(
            f"  {route:13} n={len(values):>7,}  p50 {ms(percentile(values, 0.5)):>9}  "
            f"p99 {ms(percentile(values, 0.99)):>9}  max {ms(max(values, default=0)):>9}{extra}"
        )
    print(
        f"  server CPU: {100 * window.cpu_seconds / window.seconds:.0f}% of one core, "
        f"{window.cpu_per_request * 1e6:.0f} us CPU per request; RSS max "
        f"{window.rss_max / 2**20:.0f} MB"
    )
    print(
        f"  client ({args.workers} worker process(es)): CPU {100 * window.client_cpu:.0f}% of "
        f"one core; poll start lag p50 {ms(percentile(window.lag, 0.5))} "
        f"p99 {ms(percentile(window.lag, 0.99))} (large lag = the client side is saturated)"
    )
    for note, n in window.notes.most_common(5):
        print(f"    {n} x {note}")


def print_verdicts(args: argparse.Namespace, sync: Window, bare: Window, dead: float) -> None:
    p99 = max(percentile(sync.latency[r], 0.99) for r in ROUTES)
    ratio = bare.cpu_per_request / sync.cpu_per_request
    limit = args.node_timeout + 1
    rss = sync.rss_max / 2**20
    scale = f"{args.nodes:,} nodes, {args.projects:,} projects, {args.interval:g} s interval"
    rows = [
        ("p99 of node-status and node-update < 50 ms", f"{ms(p99)}", p99 < 0.05),
        ("ratio (bare CPU/request) / (Syncopate CPU/request) >= 0.5", f"{ratio:.2f}", ratio >= 0.5),
        (
            f"dead-node detection <= node-timeout + 1 s = {limit:g} s",
            f"{dead:.2f} s",
            dead <= limit,
        ),
        ("manager RSS < 300 MB", f"{rss:.0f} MB", rss < 300),
    ]
    title = f"\ntargets (at {scale}; the figures are meant for 5,000 nodes / 10,000 projects)"
    print_targets(title, rows, width=58, value=10)
    print(
        "  ratio: CPU per request = server process CPU seconds in the window / requests "
        "answered; its inverse is the sustainable throughput per core, so the ratio is also "
        "Syncopate's sustainable req/s per core / the bare handler's."
    )


async def run(args: argparse.Namespace, tmp: Path, procs: Processes) -> None:
    nofile = raise_open_file_limit(max(4096, args.nodes * 2 + 1024))
    print_header("fleet", f"aiohttp {aiohttp.__version__}", f"open-file limit {nofile}")
    print(
        f"  load: {args.nodes:,} nodes, {args.projects:,} projects, interval {args.interval:g} s, "
        f"node-timeout {args.node_timeout:g} s, window {args.duration:g} s"
    )
    print(
        f"  client: {args.workers} worker process(es) (asyncio + aiohttp), keep-alive, at most "
        f"{args.connections} connections each; shares the CPUs with the server"
    )
    if args.interval >= args.node_timeout:
        print(
            f"  WARNING: --interval {args.interval:g} s >= --node-timeout {args.node_timeout:g} s: "
            "nodes will be declared dead between their polls"
        )
    spawned = [procs.spawn(worker_main, args.connections, nofile) for _ in range(args.workers)]
    workers = Workers(spawned)
    manager = start_manager(procs, tmp / "manager", "--node-timeout", f"{args.node_timeout:g}")
    url, token = manager.url, manager.token
    print(f"\nsetup (manager pid {manager.proc.pid}, {url}, syncopate {syncopate_version()})")
    connector = aiohttp.TCPConnector(limit=args.add_concurrency + 4)
    async with aiohttp.ClientSession(connector=connector) as http:
        bench = Bench(args, http, workers, url, token)
        await join_nodes(bench)
        await add_projects(bench)
        await settle(bench)
        sync = await measure(bench, "syncopate", manager.proc.pid, metrics=True)
        offered = sync_offered_rate(args)
        print(f"\nSyncopate manager, window {args.duration:g} s")
        print_window(sync, args, offered)
        print("\ndead-node detection")
        dead = await detect_dead(bench)
        procs.stop([manager.proc])  # before the reference, so the two never share the CPUs
        bare_pid, bare_url = start_bare(procs, tmp)
        await workers.ask("retarget", bare_url)
        await asyncio.sleep(args.interval + 1)
        bare = await measure(bench, "bare", bare_pid, metrics=False)
        print(f"\nbare aiohttp reference ({bare_url}), same nodes, interval and request mix")
        print_window(bare, args, offered)
    print_verdicts(args, sync, bare, dead)
    workers.stop()


def sync_offered_rate(args: argparse.Namespace) -> float:
    """Requests per second the fleet sends: a status poll plus one update per project."""
    return float(args.nodes + args.projects) / float(args.interval)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=5000, help="simulated nodes")
    parser.add_argument("--projects", type=int, default=10000, help="projects to add")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between polls")
    parser.add_argument("--node-timeout", type=float, default=15.0, help="manager's node-timeout")
    parser.add_argument("--duration", type=float, default=30.0, help="measurement window, s")
    parser.add_argument("--workers", type=int, default=2, help="client worker processes")
    parser.add_argument("--connections", type=int, default=256, help="connections per worker")
    parser.add_argument("--add-concurrency", type=int, default=8, help="adds in flight")
    parser.add_argument("--dead-nodes", type=int, default=5, help="nodes silenced at the end")
    parser.add_argument("--dead-poll", type=float, default=0.5, help="'nodes' poll interval, s")
    parser.add_argument("--bare-server", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.bare_server:
        serve_bare()
        return 0
    return run_main("syncopate-bench-", lambda tmp, procs: run(args, tmp, procs))


if __name__ == "__main__":
    sys.exit(main())

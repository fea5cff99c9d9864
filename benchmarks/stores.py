"""Stores benchmark: the fleet simulator against one manager on SQLite, one on PostgreSQL and two
on PostgreSQL sharing the database (DESIGN §13), in one run on one machine.

    python benchmarks/stores.py --nodes 2000 --pattern agent --repeat 3
    python benchmarks/stores.py --nodes 1000 --pattern seed --stores sqlite,pg

For each store it starts the manager(s) (PostgreSQL: a scratch server of its own, tests/pg.py),
joins the simulated nodes (two managers: half of them through the standby, which forwards to
the leader; as agents given both URLs, they then go to the leader its answer names, or with
--forward-all keep sending through the standby), adds a project per node, lets them settle,
then measures --repeat windows of the traffic (fleet_nodes.py's patterns): requests/s,
p50/p99, errors, CPU per request of the managers, and the store's commits per second (the
manager's /metrics). With two managers it then kills the leader with SIGKILL and times the
failover: until the standby says it leads, and until it answers the controller with the whole
fleet. One table at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import shutil
import signal
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psutil
from fleet import FD_MARGIN, hold_of, offered_rate, open_files_needed
from fleet_nodes import Traffic, worker_main
from fleet_setup import Bench, Workers, add_projects, join_nodes, settle
from fleet_window import Window, measure
from harness.delay_proxy import delay_proxy_main, round_trip
from harness.procs import Manager, Processes, raise_open_file_limit, run_main, start_manager
from harness.stats import cpu_seconds, percentile, print_header, syncopate_version

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.pg: the scratch server
from tests.pg import PgServer, why_not

STORES = ("sqlite", "pg", "pg2")
# PostgreSQL: the seconds a manager waited for the database server (pg_store.py).
WAITED = "syncopate_store_wait_seconds_total"
LABELS = {
    "sqlite": "SQLite",
    "pg": "PostgreSQL, 1 manager",
    "pg2": "PostgreSQL, 2 managers",
}


@dataclass
class StoreResult:
    store: str
    windows: list[Window] = field(default_factory=list)
    cpu_per_request: list[float] = field(default_factory=list)  # every manager's CPU
    db_cpu_per_request: list[float] = field(default_factory=list)  # PostgreSQL's processes
    commits: list[float] = field(default_factory=list)  # per second
    waited: list[float] = field(default_factory=list)  # share of the window the leader waited
    leads_after: float = float("nan")  # failover: the standby says it leads
    serves_after: float = float("nan")  # ... and answers the controller with every node
    note: str = ""


async def metric(http: aiohttp.ClientSession, url: str, name: str) -> float:
    async with http.get(f"{url}/metrics") as resp:
        for line in (await resp.text()).splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
    return float("nan")


async def run_store(
    args: argparse.Namespace,
    tmp: Path,
    procs: Processes,
    store: str,
    pg: PgServer | None,
    db_port: int | None = None,
) -> StoreResult:
    result = StoreResult(store)
    nodes = args.nodes
    connections, server_files = open_files_needed(args, nodes)
    nofile = raise_open_file_limit(max(4096, server_files, connections + FD_MARGIN))
    print(f"\n=== {LABELS[store]}: {nodes:,} nodes, pattern {args.pattern}")
    extra = ["--node-timeout", f"{args.node_timeout:g}"]
    if pg is not None:
        extra += ["--store", through(pg.database(), pg.port, db_port)]
    traffic = Traffic(args.pattern, args.interval, connections, args.vary, not args.forward_all)
    workers = Workers([procs.spawn(worker_main, traffic, nofile) for _ in range(args.workers)])
    leader = start_manager(procs, tmp / f"{store}-a", *extra)
    standby = None
    if store == "pg2":
        # The second manager starts from a copy of the first one's data dir (its identity).
        shutil.copytree(tmp / f"{store}-a" / "data", tmp / f"{store}-b" / "data")
        standby = start_manager(procs, tmp / f"{store}-b", *extra)
    connector = aiohttp.TCPConnector(limit=args.add_concurrency + 4)
    async with aiohttp.ClientSession(connector=connector) as http:
        bench = Bench(args, http, workers, nodes, nodes, leader.url, leader.token)
        if standby is not None:  # half the nodes through each manager
            bench.worker_urls = [(leader.url, standby.url)[i % 2] for i in range(args.workers)]
        await join_nodes(bench)
        await add_projects(bench)
        await settle(bench)
        offered = offered_rate(args, bench.setup.joined, bench.setup.added)
        for i in range(args.repeat):
            commits0 = await metric(http, leader.url, "syncopate_store_commits_total")
            waited0 = await metric(http, leader.url, WAITED)
            other0 = cpu_seconds(standby.proc.pid) if standby else 0.0
            db0 = server_cpu(pg) if pg is not None else 0.0
            window = await measure(bench, store, leader.proc.pid, metrics=True)
            other = (cpu_seconds(standby.proc.pid) - other0) if standby else 0.0
            db = (server_cpu(pg) - db0) if pg is not None else 0.0
            result.db_cpu_per_request.append(db / max(1, window.requests))
            commits1 = await metric(http, leader.url, "syncopate_store_commits_total")
            result.waited.append(
                (await metric(http, leader.url, WAITED) - waited0) / window.seconds
            )
            result.windows.append(window)
            result.cpu_per_request.append((window.cpu_seconds + other) / max(1, window.requests))
            result.commits.append((commits1 - commits0) / window.seconds)
            values = [x for v in window.latency.values() for x in v]
            print(
                f"  window {i + 1}/{args.repeat}: {window.rate:,.0f} req/s (offered "
                f"{offered:,.0f}), p50 {1e3 * percentile(values, 0.5):.1f} ms, p99 "
                f"{1e3 * percentile(values, 0.99):.1f} ms, errors {window.failed}, "
                f"{1e6 * result.cpu_per_request[-1]:.0f} us CPU/request (managers) + "
                f"{1e6 * result.db_cpu_per_request[-1]:.0f} (PostgreSQL), "
                f"{result.commits[-1]:,.0f} commits/s, the leader waited for the database "
                f"{100 * result.waited[-1]:.1f}% of the window"
            )
        if standby is not None:
            await failover(http, leader, standby, bench, result)
    workers.stop()
    procs.stop([m.proc for m in (leader, standby) if m is not None])
    return result


async def failover(
    http: aiohttp.ClientSession,
    leader: Manager,
    standby: Manager,
    bench: Bench,
    result: StoreResult,
) -> None:
    """Kill the leader (SIGKILL); time until the standby leads, and until it answers with
    every node."""
    killed = time.monotonic()
    os.kill(leader.proc.pid, signal.SIGKILL)
    url = standby.url
    while time.monotonic() - killed < 60:
        try:
            async with http.get(f"{url}/health") as resp:
                health = await resp.json()
            if health.get("role") == "leader" and math.isnan(result.leads_after):
                result.leads_after = time.monotonic() - killed
            if health.get("role") == "leader":
                body = {"access-token": standby.token, "action": "nodes"}
                async with http.post(f"{url}/controller", json=body) as resp:
                    if resp.status == 200 and len((await resp.json())["nodes"]) >= bench.nodes:
                        result.serves_after = time.monotonic() - killed
                        break
        except (aiohttp.ClientError, ValueError):
            pass
        await asyncio.sleep(0.05)
    print(
        f"  failover: the standby leads {result.leads_after:.2f} s after the leader was "
        f"killed, and answers with every node after {result.serves_after:.2f} s"
    )


def through(url: str, port: int, proxy: int | None) -> str:
    """The database URL, through the delaying proxy's port if there is one."""
    return url if proxy is None else url.replace(f":{port}/", f":{proxy}/", 1)


def delayed(procs: Processes, pg: PgServer, delay_ms: float) -> int:
    """Start the proxy that puts the database `delay_ms` away each way; its port. Prints the
    round trip measured directly and through it."""
    child = procs.spawn(delay_proxy_main, "127.0.0.1", pg.port, delay_ms)
    port = int(child.conn.recv())
    url = pg.url("postgres")
    print(
        f"  database round trip (median of 50 SELECT 1): direct "
        f"{1e3 * round_trip(url):.2f} ms, through the --db-delay-ms {delay_ms:g} proxy "
        f"{1e3 * round_trip(through(url, pg.port, port)):.2f} ms"
    )
    return port


def server_cpu(pg: PgServer) -> float:
    """CPU seconds PostgreSQL's processes used so far: the postmaster, its live children, and
    those it reaped (a manager's connection lives as long as the manager: it is counted)."""
    pid = int((pg.folder / "data" / "postmaster.pid").read_text().split()[0])
    main = psutil.Process(pid)
    times = main.cpu_times()
    total = float(times.user + times.system + times.children_user + times.children_system)
    for child in main.children():
        with contextlib.suppress(psutil.Error):
            child_times = child.cpu_times()
            total += child_times.user + child_times.system
    return total


def print_table(results: list[StoreResult]) -> None:
    print("\nsummary (medians of each store's windows)")
    print(
        f"  {'store':<24} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
        f"{'us/req':>7} {'db us':>6} {'commits/s':>10} {'leads s':>8} {'serves s':>9}"
    )
    for r in results:
        if not r.windows:
            print(f"  {LABELS[r.store]:<24} SKIPPED: {r.note}")
            continue
        p50 = statistics.median(
            percentile([x for v in w.latency.values() for x in v], 0.5) for w in r.windows
        )
        p99 = statistics.median(
            percentile([x for v in w.latency.values() for x in v], 0.99) for w in r.windows
        )
        print(
            f"  {LABELS[r.store]:<24} {statistics.median(w.rate for w in r.windows):>8,.0f} "
            f"{1e3 * p50:>8.1f} {1e3 * p99:>8.1f} {sum(w.failed for w in r.windows):>7} "
            f"{1e6 * statistics.median(r.cpu_per_request):>7.0f} "
            f"{1e6 * statistics.median(r.db_cpu_per_request or [0.0]):>6.0f} "
            f"{statistics.median(r.commits):>10,.0f} {r.leads_after:>8.2f} {r.serves_after:>9.2f}"
        )
    print(
        "  us/req: CPU of every manager per request; db us: PostgreSQL's per request; "
        "commits/s: the store's transactions (/metrics);\n  leads/serves: failover after "
        "SIGKILL of the leader (two managers only)"
    )


async def run(args: argparse.Namespace, tmp: Path, procs: Processes) -> None:
    print_header("stores", f"syncopate {syncopate_version()}")
    results = []
    pg = None
    db_port = None
    if any(s != "sqlite" for s in args.stores):
        reason = why_not()
        if reason is None:
            pg = PgServer.start()
            if args.db_delay_ms > 0:
                db_port = delayed(procs, pg, args.db_delay_ms)
        else:
            print(f"  PostgreSQL stores skipped: {reason}")
    try:
        for store in args.stores:
            if store != "sqlite" and pg is None:
                results.append(StoreResult(store, note="no PostgreSQL here"))
                continue
            results.append(
                await run_store(args, tmp, procs, store, pg if store != "sqlite" else None, db_port)
            )
    finally:
        if pg is not None:
            pg.stop()
    print_table(results)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--stores", default=",".join(STORES), help="comma-separated: sqlite, pg, pg2")
    add("--pattern", choices=("seed", "agent"), default="agent", help="the nodes' traffic")
    add("--nodes", type=int, default=2000, help="simulated nodes, a project each")
    add("--interval", type=float, default=5.0, help="seed: s between polls; agent: the wait")
    add("--vary", type=float, default=1.0, help="share of reports with changed variables")
    add("--node-timeout", type=float, default=17.0, help="manager's node-timeout")
    add("--duration", type=float, default=15.0, help="measurement window, s")
    add("--repeat", type=int, default=2, help="measurement windows per store")
    add("--workers", type=int, default=2, help="client worker processes")
    add("--connections", type=int, default=256, help="connections per worker (seed pattern)")
    add("--add-concurrency", type=int, default=8, help="adds in flight")
    add("--add-limit", type=float, default=60.0, help="s of adding at most, then go on")
    add(
        "--forward-all",
        action="store_true",
        help="pg2: the nodes joined through the standby keep sending there (as agents given "
        "its URL alone); by default they go to the leader its first answer names, as agents "
        "given both URLs do",
    )
    add(
        "--db-delay-ms",
        type=float,
        default=0.0,
        help="put PostgreSQL this many ms away each way (a delaying proxy): a database on "
        "the LAN rather than on this machine",
    )
    add("--join-limit", type=float, default=180.0, help="s of joining at most, then go on")
    add("--settle-limit", type=float, default=120.0, help="s to wait for projects to run")
    args = parser.parse_args(argv)
    args.stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    unknown = set(args.stores) - set(STORES)
    if unknown:
        parser.error(f"unknown stores {sorted(unknown)}; choose from {', '.join(STORES)}")
    args.hold = hold_of(args)
    args.period = args.hold if args.pattern == "agent" else args.interval
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_main("syncopate-stores-", lambda tmp, procs: run(args, tmp, procs))


if __name__ == "__main__":
    sys.exit(main())

"""Fleet benchmark: a Syncopate manager under a simulated fleet, next to a bare aiohttp handler.

    python benchmarks/fleet.py --sizes 1000,5000,10000,20000 --pattern seed --repeat 3
    python benchmarks/fleet.py --sizes 1000,5000,10000 --pattern agent --repeat 3
    python benchmarks/fleet.py --nodes 200 --interval 1 --node-timeout 3 --duration 5

For each size it starts a manager subprocess on 127.0.0.1, joins N simulated nodes (asyncio +
aiohttp in a few worker processes), adds the projects through /controller (timed: adds/s),
times a few single adds under load, lets the fleet settle, then measures --repeat windows of
the traffic pattern (`seed`: poll without `wait`, one /node-update per project, every
--interval; `agent`: one held poll carrying every project's report, again as soon as it is
answered; see fleet_nodes.py). Then it silences a few nodes and times their detection as dead,
stops the manager and drives a bare aiohttp server with the same nodes and traffic as a
reference. One table at the end, a row per size. It prints figures, not pass/fail of a test
suite; all subprocesses are ended on exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
from pathlib import Path

import aiohttp
import psutil
from fleet_bare import serve_bare, start_bare
from fleet_dead import detect_dead
from fleet_nodes import Traffic, worker_main
from fleet_setup import Bench, Workers, add_projects, join_nodes, settle, single_adds
from fleet_table import SizeResult, print_medians, print_table, print_verdicts
from fleet_window import measure, print_window
from harness.procs import Processes, raise_open_file_limit, run_main, start_manager
from harness.stats import print_header, syncopate_version

import syncopate
from syncopate.protocol import MAX_WAIT_SECONDS

HOLD_SHARE = 0.3  # the manager holds a poll at most this share of node-timeout
FD_MARGIN = 256  # files a server or worker has open besides the nodes' connections


def hold_of(args: argparse.Namespace) -> float:
    """How long the agent pattern's polls are held: the `wait` asked (--interval), capped."""
    return float(min(args.interval, MAX_WAIT_SECONDS, HOLD_SHARE * args.node_timeout))


def offered_rate(args: argparse.Namespace, nodes: int, projects: int) -> float:
    """Requests per second the fleet sends: seed, a status poll plus one update per project a
    node per interval; agent, one poll a node per hold."""
    if args.pattern == "agent":
        return nodes / float(args.hold)
    return (nodes + projects) / float(args.interval)


def open_files_needed(args: argparse.Namespace, nodes: int) -> tuple[int, int]:
    """(connections per worker, open files the server needs): a held poll keeps its
    connection, so the agent pattern needs one per node, in the workers and in the server."""
    if args.pattern == "agent":
        per_worker = max(args.connections, math.ceil(nodes / args.workers) + 64)
        return per_worker, nodes + FD_MARGIN
    return args.connections, args.workers * args.connections + FD_MARGIN


async def run_size(args: argparse.Namespace, tmp: Path, procs: Processes, nodes: int) -> SizeResult:
    projects = args.projects if args.projects is not None else nodes * args.projects_per_node
    result = SizeResult(nodes, offered_rate(args, nodes, projects), args.period)
    connections, server_files = open_files_needed(args, nodes)
    nofile = raise_open_file_limit(max(4096, server_files, connections + FD_MARGIN))
    print(
        f"\n=== {nodes:,} nodes, {projects:,} projects, pattern {args.pattern}: offered "
        f"{result.offered:,.0f} req/s; {connections:,} connections per worker; open-file "
        f"limit {nofile:,} (the server needs ~{server_files:,})"
    )
    if nofile < server_files:
        result.skipped = (
            f"the open-file limit ({nofile:,}, its hard limit) is below the ~{server_files:,} "
            "the server needs for this size's connections"
        )
        print(f"  SKIPPED: {result.skipped}")
        return result
    traffic = Traffic(args.pattern, args.interval, connections, args.vary)
    spawned = [procs.spawn(worker_main, traffic, nofile) for _ in range(args.workers)]
    workers = Workers(spawned)
    folder = tmp / f"manager-{nodes}"
    manager = start_manager(procs, folder, "--node-timeout", f"{args.node_timeout:g}")
    print(f"setup (manager pid {manager.proc.pid}, {manager.url})")
    connector = aiohttp.TCPConnector(limit=args.add_concurrency + 4)
    async with aiohttp.ClientSession(connector=connector) as http:
        bench = Bench(args, http, workers, nodes, projects, manager.url, manager.token)
        result.setup = bench.setup
        await join_nodes(bench)
        await add_projects(bench)
        await settle(bench)
        await single_adds(bench)
        result.offered = offered_rate(args, bench.setup.joined, bench.setup.added)
        for i in range(args.repeat):
            window = await measure(bench, "syncopate", manager.proc.pid, metrics=True)
            result.manager.append(window)
            print(f"\nSyncopate manager, window {i + 1}/{args.repeat} ({args.duration:g} s)")
            print_window(window, result.offered, args.period, args.pattern)
        print_medians(result, "manager")
        print("\ndead-node detection")
        result.detection = await detect_dead(bench)
        procs.stop([manager.proc])  # before the reference, so the two never share the CPUs
        bare, bare_url = start_bare(procs, tmp / f"bare-{nodes}.log", args.hold)
        await workers.ask("retarget", bare_url)
        # Every node's first cycle (its new connection, a hold) is over before the window.
        await asyncio.sleep(args.interval + args.period + 1)
        for i in range(args.repeat):
            window = await measure(bench, "bare", bare.pid, metrics=False)
            result.bare.append(window)
            print(f"\nbare aiohttp reference, window {i + 1}/{args.repeat}, same nodes and mix")
            print_window(window, result.offered, args.period, args.pattern)
        print_medians(result, "bare")
        procs.stop([bare])
    workers.stop()
    return result


async def run(args: argparse.Namespace, tmp: Path, procs: Processes) -> None:
    where = Path(syncopate.__file__).parent.parent  # the manager subprocess imports the same
    print_header("fleet", f"aiohttp {aiohttp.__version__}", f"syncopate {syncopate_version()}")
    print(f"  syncopate from {where}")
    load = ", ".join(f"{x:.2f}" for x in psutil.getloadavg())
    print(f"  machine load before the run (1, 5, 15 min): {load}")
    what = (
        f"poll with wait {args.interval:g} s (held {args.hold:g} s at most: 0.3 x node-timeout)"
        " carrying every project's report, again at once"
        if args.pattern == "agent"
        else f"poll without wait, then one update per project, every {args.interval:g} s"
    )
    print(
        f"  pattern {args.pattern}: {what}; node-timeout {args.node_timeout:g} s; window "
        f"{args.duration:g} s x {args.repeat}; {100 * args.vary:g}% of reports with changed "
        f"variables; generator: {args.workers} worker processes "
        "(asyncio + aiohttp, keep-alive), sharing the CPUs with the server"
    )
    if args.pattern == "seed" and args.interval >= args.node_timeout:
        print(
            f"  WARNING: --interval {args.interval:g} s >= --node-timeout {args.node_timeout:g} s: "
            "nodes will be declared dead between their polls"
        )
    results = [await run_size(args, tmp, procs, nodes) for nodes in args.sizes]
    print_table(results, args.pattern)
    print_verdicts(results, args.pattern, args.node_timeout)
    load = ", ".join(f"{x:.2f}" for x in psutil.getloadavg())
    print(f"  machine load after the run (1, 5, 15 min; the run's own included): {load}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--pattern", choices=("seed", "agent"), default="seed", help="the nodes' traffic")
    add("--sizes", help="node counts, comma-separated, a run each (e.g. 1000,5000,10000,20000)")
    add("--nodes", type=int, default=5000, help="simulated nodes (without --sizes)")
    add("--projects", type=int, help="projects to add (default: nodes x --projects-per-node)")
    add("--projects-per-node", type=int, default=1, help="projects per node (default 1)")
    add("--interval", type=float, default=5.0, help="seed: s between polls; agent: the wait")
    add("--vary", type=float, default=1.0, help="share of reports with changed variables")
    add("--node-timeout", type=float, default=15.0, help="manager's node-timeout")
    add("--duration", type=float, default=30.0, help="measurement window, s")
    add("--repeat", type=int, default=1, help="measurement windows per size (medians printed)")
    add("--workers", type=int, default=2, help="client worker processes")
    add("--connections", type=int, default=256, help="connections per worker (seed pattern)")
    add("--add-concurrency", type=int, default=8, help="adds in flight")
    add("--add-limit", type=float, default=60.0, help="s of adding at most, then go on")
    add("--join-limit", type=float, default=180.0, help="s of joining at most, then go on")
    add("--settle-limit", type=float, default=120.0, help="s to wait for projects to run")
    add("--dead-nodes", type=int, default=5, help="nodes silenced at the end")
    add("--dead-poll", type=float, default=0.5, help="'nodes' poll interval, s")
    add("--bare-server", action="store_true", help=argparse.SUPPRESS)
    add("--hold-cap", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.sizes = [int(n) for n in args.sizes.split(",")] if args.sizes else [args.nodes]
    args.hold = hold_of(args)
    args.period = args.hold if args.pattern == "agent" else args.interval
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.bare_server:
        serve_bare(args.hold_cap)
        return 0
    return run_main("syncopate-bench-", lambda tmp, procs: run(args, tmp, procs))


if __name__ == "__main__":
    sys.exit(main())

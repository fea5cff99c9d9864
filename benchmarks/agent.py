"""Agent benchmark: a real node agent's footprint and reaction times, next to supervisord.

    python benchmarks/agent.py                          # about 3 minutes
    python benchmarks/agent.py --idle-window 10 --crash-rounds 1 --moves 1 --no-supervisord

It starts a real manager and real `syncopate node join` agents as subprocesses on 127.0.0.1,
makes git repositories in a temporary directory (used through file:// URLs) and measures the
agent's RSS and idle CPU, crash -> restart, add -> running and node power loss -> running
elsewhere; then it runs supervisord with the same programs for comparison. It prints figures,
asserts nothing, and ends every subprocess on exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from agent_nodes import (
    AGENT_INTERVAL,
    SYNC_INTERVAL,
    Agent,
    Controller,
    make_repo,
    project_command,
    start_agent,
    start_controller,
)
from agent_supervisord import (
    Comparison,
    ms,
    print_comparison,
    run_supervisord,
    spread,
    worst,
)
from agent_watch import POLL, Crashes, Parent, Usage, measure_usage, memory_map_summary, scan_cost
from harness import stats
from harness.procs import Processes, run_main
from harness.stats import print_header, print_targets

from syncopate.node.backoff import BackoffPolicy

MAIN_NODE_TIMEOUT = 15.0  # the manager's default; parts 1-4
PROJECTS = 5


@dataclass
class AddTiming:
    process: float
    running: float


def timed_add(manager: Controller, agent: Agent, name: str, url: str) -> AddTiming | None:
    """Add a project; seconds until its process exists on the node and the manager says running."""
    parent = Parent.of(agent.proc.pid)
    known = parent.children()
    project = {"name": name, "url": url, "initial_variables": {}, "command": project_command(name)}
    t0 = time.perf_counter()
    manager.ask("add", project=project)
    found = parent.new_child(name, known, t0 + 30)
    if found is None:
        return None
    while time.perf_counter() - t0 < 30:
        info = manager.project(name)
        if info.get("status") == "running" and info.get("node") == agent.name:
            return AddTiming(found[1] - t0, time.perf_counter() - t0)
        time.sleep(0.01)
    return None


def wait_running(manager: Controller, name: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = manager.project(name)
        if info.get("status") == "running":
            return info
        time.sleep(0.05)
    raise RuntimeError(f"{name} is not running after {timeout:g} s: {manager.project(name)}")


@dataclass
class Move:
    dead: float | None = None  # the manager said the node is dead (an upper bound)
    process: float | None = None  # the project's process exists under the other agent
    running: float | None = None  # the manager says running on the other node


def power_loss(manager: Controller, holder: Agent, other: Agent, name: str) -> Move:
    """SIGKILL the holder agent and its project's group; time the project's arrival on `other`."""
    pid = Parent.of(holder.proc.pid).find(name)
    target = Parent.of(other.proc.pid)
    known = target.children()
    move = Move()
    t0 = time.perf_counter()
    holder.proc.kill()
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    deadline = t0 + manager.node_timeout + 30
    next_ask = t0
    while move.process is None and time.perf_counter() < deadline:
        if move.dead is None and time.perf_counter() >= next_ask:
            if manager.node_status(holder.name) == "dead":
                move.dead = time.perf_counter() - t0
            next_ask = time.perf_counter() + 0.05
        found = target.new_child(name, known, time.perf_counter() + 0.01)
        if found is not None:
            move.process = found[1] - t0
    while move.process is not None and time.perf_counter() < deadline:
        if move.dead is None and manager.node_status(holder.name) == "dead":
            # The move can land between two looks at the node: it died no later than now.
            move.dead = time.perf_counter() - t0
        info = manager.project(name)
        if info.get("status") == "running" and info.get("node") == other.name:
            move.running = time.perf_counter() - t0
            break
        time.sleep(0.01)
    holder.proc.wait()
    return move


# --- the phases ---
@dataclass
class Results:
    idle: Usage | None = None
    busy: Usage | None = None
    crash: list[float] = field(default_factory=list)
    crash_missed: int = 0
    adds: list[AddTiming] = field(default_factory=list)
    add_missed: int = 0
    moves: list[Move] = field(default_factory=list)
    move_timeout: float = 3.0
    supervisord: Comparison | None = None


def print_intro(args: argparse.Namespace) -> None:
    policy = BackoffPolicy()
    print_header("agent", f"psutil {psutil.__version__}", f"syncopate {stats.syncopate_version()}")
    print(
        f"  agents: --interval {AGENT_INTERVAL:g} --sync-interval {SYNC_INTERVAL:g}; projects "
        f"run `{project_command('NAME')}` (a sleeping Python) from a file:// repository"
    )
    print(
        f"  agent default backoff (syncopate/node/backoff.py): first restart after "
        f"{ms(policy.first)}, x{policy.factor:g} per failure in a row, cap {policy.cap:g} s, "
        f"forgiven after a run of {policy.stable_after:g} s"
    )


def phase_idle(agent: Agent, args: argparse.Namespace, results: Results) -> None:
    print(f"\n1-2. agent idle (joined, no projects); settle {args.settle:g} s first")
    time.sleep(args.settle)
    results.idle = measure_usage(agent.proc.pid, args.idle_window)
    print(f"  agent pid {agent.proc.pid}: {results.idle.line()}")
    print(f"  where its RSS is: {memory_map_summary(agent.proc.pid)}")


def phase_add(
    manager: Controller, agent: Agent, repos: dict[str, str], results: Results
) -> list[str]:
    print(f"\n4. add -> running, {len(repos)} projects one after another (each clones its repo)")
    added = []
    for name, url in repos.items():
        timing = timed_add(manager, agent, name, url)
        if timing is None:
            results.add_missed += 1
            print(f"  {name}: NOT running within 30 s")
            continue
        added.append(name)
        results.adds.append(timing)
        print(
            f"  {name}: process exists after {ms(timing.process)}, manager says running "
            f"after {ms(timing.running)}"
        )
    return added


def phase_busy(agent: Agent, count: int, args: argparse.Namespace, results: Results) -> None:
    print(f"\n1. agent with {count} projects running; settle {args.settle:g} s first")
    time.sleep(args.settle)
    results.busy = measure_usage(agent.proc.pid, args.busy_window)
    print(f"  agent pid {agent.proc.pid}: {results.busy.line()}")


def phase_crash(
    manager: Controller, agent: Agent, names: list[str], args: argparse.Namespace, results: Results
) -> None:
    policy = BackoffPolicy()
    stable = policy.stable_after + 1.0
    parent = Parent.of(agent.proc.pid)
    print(
        f"\n3. crash -> restarted: SIGKILL a project's process, look for its new process every "
        f"{ms(POLL)} (one look costs {ms(scan_cost(parent))}); {args.crash_rounds} round(s) over "
        f"{len(names)} projects, each crash after a run of >= {stable:g} s (backoff forgiven)"
    )
    crashes = Crashes.of(parent, names)
    crashes.series(args.crash_rounds, stable)
    results.crash, results.crash_missed = crashes.latencies, crashes.missed
    print(f"  first restart: {spread(crashes.latencies)}; missed {crashes.missed}")
    print(f"    each: {', '.join(ms(x) for x in crashes.latencies)}")
    first, second = crashes.back_to_back(names[0], stable)
    print(
        f"  {names[0]} after a stable run: first restart {show_ms(first)}, then killed again at "
        f"once: second restart {show_ms(second)} (backoff {ms(policy.first)}, then "
        f"{ms(policy.first * policy.factor)}, by design)"
    )
    time.sleep(AGENT_INTERVAL / 2)
    statuses = {n: manager.project(n) for n in names}
    restarts = sum(int(p.get("restarts") or 0) for p in statuses.values())
    states = sorted({str(p.get("status")) for p in statuses.values()})
    count = len(crashes.latencies) + (first is not None) + (second is not None)
    print(f"  the manager says: restarts {restarts} (benchmark counted {count}), status {states}")


def phase_move(
    procs: Processes, tmp: Path, url: str, args: argparse.Namespace, results: Results
) -> None:
    timeout = args.move_node_timeout
    results.move_timeout = timeout
    print(
        f"\n5. node power loss -> running elsewhere: a second manager with --node-timeout "
        f"{timeout:g}, two agents; SIGKILL the project's agent and its process group"
    )
    manager = start_controller(procs, tmp / "manager-move", timeout)
    folder = tmp / "nodes-move"
    agents = {name: start_agent(procs, manager, folder, name) for name in ("move-a", "move-b")}
    name = "moving"
    project = {"name": name, "url": url, "initial_variables": {}, "command": project_command(name)}
    manager.ask("add", project=project)
    for run in range(args.moves):
        holder = agents[str(wait_running(manager, name)["node"])]
        other = next(a for a in agents.values() if a is not holder)
        time.sleep(1.0)
        move = power_loss(manager, holder, other, name)
        results.moves.append(move)
        print(
            f"  run {run + 1}: {holder.name} -> {other.name}: declared dead "
            f"{show(move.dead)}, process on {other.name} {show(move.process)}, manager says "
            f"running there {show(move.running)}"
        )
        agents[holder.name] = start_agent(procs, manager, folder, holder.name)  # power is back
    procs.stop([a.proc for a in agents.values()] + [manager.proc])


def show_ms(seconds: float | None) -> str:
    return "NOT restarted within 5 s" if seconds is None else ms(seconds)


def show(seconds: float | None) -> str:
    return "never" if seconds is None else f"after {seconds:.2f} s"


def phase_main(
    procs: Processes, tmp: Path, repos: dict[str, str], args: argparse.Namespace
) -> Results:
    results = Results()
    manager = start_controller(procs, tmp / "manager", MAIN_NODE_TIMEOUT)
    agent = start_agent(procs, manager, tmp / "nodes", "bench-node")
    print(
        f"\nsetup: manager pid {manager.proc.pid} at {manager.url} (--node-timeout "
        f"{MAIN_NODE_TIMEOUT:g}); agent {agent.name} pid {agent.proc.pid}"
    )
    phase_idle(agent, args, results)
    names = phase_add(manager, agent, repos, results)
    phase_busy(agent, len(names), args, results)
    if names:
        phase_crash(manager, agent, names, args, results)
    procs.stop([agent.proc, manager.proc])
    return results


# --- the report ---


def print_verdicts(results: Results) -> None:
    idle_rss = results.idle.rss_max if results.idle else float("inf")
    busy_rss = results.busy.rss_max if results.busy else float("inf")
    idle_cpu = results.idle.cpu_percent if results.idle else float("inf")
    crash = worst(list(results.crash), results.crash_missed)
    add = worst([a.running for a in results.adds], results.add_missed)
    move = worst([m.running for m in results.moves])
    limit = results.move_timeout + 1
    rows = [
        ("agent RSS idle <= 40 MB", f"{idle_rss:.1f} MB", idle_rss <= 40),
        ("agent RSS with 5 projects <= 40 MB", f"{busy_rss:.1f} MB", busy_rss <= 40),
        ("agent idle CPU <= 1% of one core", f"{idle_cpu:.2f}%", idle_cpu <= 1),
        ("crash -> restarted (first restart, max) <= 100 ms", ms(crash), crash <= 0.1),
        ("add -> running (manager says, max) <= 1 s", f"{add:.2f} s", add <= 1),
        (
            f"power loss -> running elsewhere <= node-timeout + 1 s = {limit:g} s",
            f"{move:.2f} s",
            move <= limit,
        ),
    ]
    title = "\ntargets (RSS and CPU of the agent process only, not its projects; psutil)"
    print_targets(title, rows, width=62)


# --- main ---
def run(args: argparse.Namespace, tmp: Path, procs: Processes) -> None:
    print_intro(args)
    repo_dirs = {f"bench-{i}": tmp / "repos" / f"bench-{i}" for i in range(1, PROJECTS + 1)}
    repos = {name: make_repo(path) for name, path in repo_dirs.items()}
    move_url = make_repo(tmp / "repos" / "moving")
    results = phase_main(procs, tmp, repos, args)
    if args.moves > 0:
        phase_move(procs, tmp, move_url, args, results)
    print(f"\n6. supervisord, {len(repo_dirs)} programs with the same command, for comparison")
    if args.no_supervisord:
        print("  SKIPPED (--no-supervisord)")
    else:
        results.supervisord = run_supervisord(procs, tmp / "supervisord", repo_dirs, args)
    if results.supervisord is not None and results.busy is not None:
        print_comparison(results.busy, results.crash, results.supervisord)
    print_verdicts(results)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle-window", type=float, default=30.0, help="idle CPU window, s")
    parser.add_argument("--busy-window", type=float, default=15.0, help="window with projects, s")
    parser.add_argument("--settle", type=float, default=6.0, help="wait before a window, s")
    parser.add_argument("--crash-rounds", type=int, default=2, help="crashes per project")
    parser.add_argument("--moves", type=int, default=3, help="power-loss runs")
    parser.add_argument(
        "--move-node-timeout", type=float, default=3.0, help="node-timeout for the power-loss part"
    )
    parser.add_argument("--no-supervisord", action="store_true", help="skip the comparison")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_main("syncopate-agent-bench-", lambda tmp, procs: run(args, tmp, procs))


if __name__ == "__main__":
    sys.exit(main())

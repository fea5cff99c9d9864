"""Monitor and placement benchmark: a monitor tick and one placement at many nodes, in process.

    python benchmarks/monitor.py                      # 10,000 nodes, 10,000 projects
    python benchmarks/monitor.py --nodes 20000 --projects 0 --runs 9

Issue 18 asks for a silent node detected within node-timeout + 1 s and one project placed in
under 1 ms at 10,000 nodes. This builds a `Cluster` on a temporary SQLite store (no HTTP),
joins `--nodes` nodes through `Cluster.initialize` and adds `--projects` projects through
`Cluster.add` (all in one write, so the build does not wait for thousands of fsyncs), then
times, each the median of `--runs` rounds:

- an idle `Cluster.tick()` (nobody silent, nothing drained, nothing to retry);
- a tick after one report (a report marks its node's placement view stale);
- one placement through the manager's path (`ClusterState.place`, where it exists: the older
  code has none) and through the old scan (`scheduler.place` over `ClusterState.views()`),
  with and without `--on` constraints;
- one whole `Cluster.add` (its durable write included);
- a tick that finds one node silent and declares it dead (its project failed over);
- a tick after one add (an assignment changed: the tick looks for unplaced projects).

Run it on an older checkout for a baseline. It prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from harness.stats import print_header, syncopate_version

from syncopate.constraints import parse_all
from syncopate.manager import scheduler
from syncopate.manager.cluster import Cluster, ClusterSettings
from syncopate.manager.cluster_state import ClusterState
from syncopate.manager.store import Store
from syncopate.project_protocol import AddProject
from syncopate.protocol import InitializeRequest, UpdateRequest
from syncopate.states import Desired

URL = "https://example.com/project.git"
TIMEOUT = 15.0


class Clock:
    """The monotonic clock, moved forward at will (a silent node, without the wait)."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.ahead


def build(data_dir: Path, nodes: int, projects: int, clock: Clock) -> Cluster:
    """A cluster of `nodes` labelled nodes and `projects` running projects."""
    cluster = Cluster(Store(data_dir), ClusterSettings(node_timeout=TIMEOUT), clock=clock)
    with cluster._write(durable=True):
        for i in range(nodes):
            request = InitializeRequest.model_validate(
                {
                    "preferred-name": f"node-{i:05d}",
                    "syncopate-password": "x",
                    "storage": 200_000,
                    "ram": 16_000,
                    "labels": {"zone": f"zone-{i % 5}", "arch": "arm64" if i % 2 else "amd64"},
                    "agent-version": "bench",
                }
            )
            cluster.initialize(request, "127.0.0.1")
        for i in range(projects):
            # Stopped, then wanted running: the first tick places them all in one pass
            # (`place_many`), not one scan each as many adds would in the older code.
            project = cluster.add(spec(f"project-{i:05d}", i, start=False))
            cluster._keep(project)
            project.desired = Desired.RUNNING
        cluster.state.retry_needed = True
    cluster.tick()  # the first tick places and reconciles: not an idle one
    cluster.tick()
    cluster.state.views()  # the views the placements made stale, recomputed once
    return cluster


def silence_one(cluster: Cluster, clock: Clock, alive: list[str]) -> None:
    """Move past the node-timeout and hear from every alive node but one."""
    clock.ahead += TIMEOUT + 1
    alive.pop()
    for name in alive:
        cluster.touch(cluster.nodes[name])


def spec(name: str, i: int, start: bool = True) -> AddProject:
    return AddProject.model_validate(
        {"name": name, "url": URL, "ram": 50 + i % 200, "disk": 100 + i % 500, "start": start}
    )


def report(cluster: Cluster, project_name: str, disk: float) -> None:
    """A node's report on one of its projects, with a new disk usage."""
    project = cluster.projects[project_name]
    assert project.node is not None
    node = cluster.nodes[project.node]
    cluster.touch(node)
    cluster.update(
        node,
        UpdateRequest.model_validate(
            {
                "name": node.name,
                "access-token": "unused",
                "project-name": project.name,
                "project-url": project.url,
                "status": "running",
                "epoch": project.epoch,
                "disk-usage": disk,
            }
        ),
    )


def old_scan(state: ClusterState, need: scheduler.ProjectNeed) -> scheduler.Placement:
    """One placement as the manager made it before issue 18: a scan of every node's view."""
    return scheduler.place(need, state.views())


def median_time(
    runs: int, work: Callable[[], object], setup: Callable[[], object] | None = None
) -> float:
    times = []
    for _ in range(runs):
        if setup is not None:
            setup()
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--projects", type=int, default=10_000)
    args = parser.parse_args()
    print_header("monitor", f"syncopate {syncopate_version()}")
    logging.getLogger("syncopate").setLevel(logging.ERROR)  # not a line per node declared dead
    with tempfile.TemporaryDirectory(prefix="syncopate-bench-") as tmp:
        started = time.perf_counter()
        clock = Clock()
        cluster = build(Path(tmp), args.nodes, args.projects, clock)
        placed = [p for p in cluster.projects.values() if p.node is not None]
        print(
            f"  {args.nodes} nodes, {args.projects} projects (built in "
            f"{time.perf_counter() - started:.1f} s), {len(placed)} placed; "
            f"median of {args.runs} runs\n"
        )
        state = cluster.state
        rows: list[tuple[str, float]] = []
        rows.append(("idle tick", median_time(args.runs, cluster.tick)))
        if placed:
            counter = iter(range(10**9))
            rows.append(
                (
                    "tick after one report",
                    median_time(
                        args.runs,
                        cluster.tick,
                        lambda: report(cluster, placed[0].name, float(next(counter) % 7)),
                    ),
                )
            )
        for label, on in (
            ("", []),
            (" --on zone=zone-3,arch=arm64", ["zone=zone-3", "arch=arm64"]),
        ):
            need = scheduler.ProjectNeed("bench", 100.0, 200.0, tuple(parse_all(on)))
            rows.append(
                (
                    f"old scan: place(need, views()){label}",
                    median_time(args.runs, partial(old_scan, state, need)),
                )
            )
            incremental = getattr(state, "place", None)  # none in the older code
            if incremental is not None:
                rows.append(
                    (
                        f"ClusterState.place{label}",
                        median_time(args.runs, partial(incremental, need)),
                    )
                )
        alive = sorted(cluster.nodes)
        rows.append(
            (
                "tick declaring one silent node dead",
                median_time(args.runs, cluster.tick, partial(silence_one, cluster, clock, alive)),
            )
        )
        counter2 = iter(range(10**9))
        rows.append(
            (
                "one Cluster.add (durable write)",
                median_time(args.runs, lambda: cluster.add(spec(f"extra-{next(counter2)}", 3))),
            )
        )
        rows.append(
            (
                "tick after one add (retries, copies: scans of projects)",
                median_time(
                    args.runs, cluster.tick, lambda: cluster.add(spec(f"more-{next(counter2)}", 3))
                ),
            )
        )
        for what, seconds in rows:
            print(f"  {what:<58} {seconds * 1000:>9.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

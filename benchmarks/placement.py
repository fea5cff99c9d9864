"""Placement benchmark: the pure scheduler placing many projects with `--on` constraints.

    python benchmarks/placement.py                      # 10,000 projects on 5,000 nodes
    python benchmarks/placement.py --runs 9 --nodes 20000 --projects 40000

A failover or a manager start places thousands of projects in one `place_many` call (DESIGN
section 12 asks for well under 1 ms a project). This builds `--nodes` labelled nodes (a zone of
five, an arch of two, one in ten with a gpu) and `--projects` projects whose constraints cycle
through a few sets (K=V, K!=V, K, several at once, none), then times `place_many` over them,
beside the same projects without constraints, and one project placed alone with `place` (an
`add`: a plain scan). It prints the median of `--runs` runs next to the target and asserts
nothing. No processes, no network: the scheduler is pure.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial

from harness.stats import print_header, print_targets, syncopate_version

from syncopate.constraints import parse_all
from syncopate.manager.scheduler import NodeView, ProjectNeed, place, place_many

TARGET = 0.001  # seconds per project placed, median run
CONSTRAINT_SETS = [
    [],
    ["zone=zone-1"],
    ["gpu"],
    ["arch=arm64", "zone!=zone-2"],
    ["zone=zone-3", "arch=amd64"],
    ["zone!=zone-0"],
    ["gpu", "arch=arm64"],
    ["zone=zone-4", "arch=arm64", "rack"],
]


def fleet(count: int) -> list[NodeView]:
    """`count` live nodes with labels and some load, varied so ranks differ."""
    nodes = []
    for i in range(count):
        labels = {"zone": f"zone-{i % 5}", "arch": "arm64" if i % 2 else "amd64", "rack": str(i)}
        if i % 10 == 0:
            labels["gpu"] = "yes"
        nodes.append(
            NodeView(
                name=f"node-{i:05d}",
                schedulable=True,
                storage=200_000,
                ram=16_000,
                disk_used=float(i % 97),
                ram_used=float(i % 89),
                projects=i % 3,
                labels=labels,
            )
        )
    return nodes


def projects(count: int, constrained: bool) -> list[ProjectNeed]:
    """`count` projects asking for some RAM and disk; each with one of the constraint sets."""
    sets = [tuple(parse_all(texts)) for texts in CONSTRAINT_SETS]
    return [
        ProjectNeed(
            f"project-{i:05d}",
            ram=float(50 + i % 200),
            disk=float(100 + i % 500),
            constraints=sets[i % len(sets)] if constrained else (),
        )
        for i in range(count)
    ]


def timed(runs: int, work: Callable[[], object]) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=5_000)
    parser.add_argument("--projects", type=int, default=10_000)
    args = parser.parse_args()
    print_header("placement", f"syncopate {syncopate_version()}")
    nodes = fleet(args.nodes)
    constrained = projects(args.projects, constrained=True)
    plain = [replace(p, constraints=()) for p in constrained]
    print(
        f"  {args.nodes} nodes, {args.projects} projects, {len(CONSTRAINT_SETS)} constraint "
        f"sets; median of {args.runs} runs"
    )
    placed = place_many(constrained, nodes)
    reasons = sorted({p.reason for p in placed.values() if p.node is None})
    unplaced = sum(p.node is None for p in placed.values())
    print(f"  placed {len(placed) - unplaced} of {len(placed)} with constraints")
    for reason in reasons:
        print(f"    unplaced: {reason}")
    rows = []
    print(f"\n  {'place_many':<34} {'whole run':>10} {'per project':>12}")
    for what, needs in (("with constraints", constrained), ("without constraints", plain)):
        median = statistics.median(timed(args.runs, partial(place_many, needs, nodes)))
        per = median / len(needs)
        print(f"  {what:<34} {median * 1000:>8.0f}ms {per * 1e6:>10.1f}us")
        rows.append((f"place_many {what}: < {TARGET * 1000:.0f} ms a project", per))
    one = constrained[3]  # two constraints, one of them K!=V
    alone = statistics.median(timed(args.runs, lambda: place(one, nodes)))
    print(f"  {'one project alone (place, a scan)':<34} {alone * 1000:>8.1f}ms")
    print_targets(
        "\ntargets (median run)",
        [(text, f"{per * 1e6:.1f} us", per < TARGET) for text, per in rows],
        width=52,
        value=10,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Placement and balance: pure functions of (projects, nodes), no I/O.

Placement follows the seed: among live nodes that fit the project (free RAM and storage, from
reported capacity minus what their projects use or asked for), take the one with the least disk
in use; ties go to fewer projects, then to the name.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class NodeView:
    """What placement needs to know of a node."""

    name: str
    schedulable: bool  # alive, not drained, not leaving
    storage: float  # MB capacity reported at join
    ram: float  # MB capacity reported at join
    disk_used: float = 0.0
    ram_used: float = 0.0
    projects: int = 0

    @property
    def free_storage(self) -> float:
        return self.storage - self.disk_used

    @property
    def free_ram(self) -> float:
        return self.ram - self.ram_used


@dataclass(frozen=True, slots=True)
class ProjectNeed:
    """What placement needs to know of a project: the larger of asked-for and last measured."""

    name: str
    ram: float = 0.0
    disk: float = 0.0


@dataclass(frozen=True, slots=True)
class Placement:
    """The scheduler's answer: a node, or None with the reason no node fits."""

    node: str | None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Move:
    """Move `project` from `source` to `target` (stop, final variables, start elsewhere)."""

    project: str
    source: str
    target: str


def fits(project: ProjectNeed, node: NodeView) -> bool:
    """True when the node is schedulable and has the RAM and storage the project needs."""
    return node.schedulable and node.free_ram >= project.ram and node.free_storage >= project.disk


def _rank(node: NodeView) -> tuple[float, int, str]:
    return (node.disk_used, node.projects, node.name)


def place(project: ProjectNeed, nodes: Iterable[NodeView]) -> Placement:
    """Pick the node for a project, or say why none fits."""
    candidates = list(nodes)
    live = [n for n in candidates if n.schedulable]
    if not live:
        return Placement(
            None,
            "no live node to run it"
            if not candidates
            else "no live node accepts projects (all dead or drained)",
        )
    fitting = [n for n in live if fits(project, n)]
    if fitting:
        return Placement(min(fitting, key=_rank).name)
    best_ram = max(live, key=lambda n: n.free_ram)
    best_disk = max(live, key=lambda n: n.free_storage)
    needs = []
    if project.ram > best_ram.free_ram:
        needs.append(
            f"{_mb(project.ram)} RAM (most free: {_mb(best_ram.free_ram)} on {best_ram.name})"
        )
    if project.disk > best_disk.free_storage:
        needs.append(
            f"{_mb(project.disk)} storage "
            f"(most free: {_mb(best_disk.free_storage)} on {best_disk.name})"
        )
    if not needs:
        needs.append(f"{_mb(project.ram)} RAM and {_mb(project.disk)} storage on the same node")
    return Placement(None, "no live node has " + " and ".join(needs))


def _mb(value: float) -> str:
    return f"{max(value, 0):.0f} MB"


def with_project(node: NodeView, project: ProjectNeed, sign: int = 1) -> NodeView:
    """The node as it will be once the project runs there (or has left it, with sign=-1)."""
    return NodeView(
        name=node.name,
        schedulable=node.schedulable,
        storage=node.storage,
        ram=node.ram,
        disk_used=node.disk_used + sign * project.disk,
        ram_used=node.ram_used + sign * project.ram,
        projects=node.projects + sign,
    )


def place_many(projects: Sequence[ProjectNeed], nodes: Iterable[NodeView]) -> dict[str, Placement]:
    """Place several projects one after another, each seeing the ones placed before it.

    The same choice as `place` for each, but the live nodes sit in a heap ordered by the
    placement rank, so a failover of thousands of projects costs O(log nodes) per project
    when the best-ranked node fits.
    """
    if len(projects) == 1:
        # One project (an add, a start): a plain scan beats building the heap.
        return {projects[0].name: place(projects[0], nodes)}
    live = {n.name: n for n in nodes if n.schedulable}
    heap = [(_rank(view), name) for name, view in live.items()]
    heapq.heapify(heap)
    result: dict[str, Placement] = {}
    for project in sorted(projects, key=lambda p: p.name):
        passed_over: list[tuple[tuple[float, int, str], str]] = []
        chosen: NodeView | None = None
        while heap:
            entry = heapq.heappop(heap)
            if fits(project, live[entry[1]]):
                chosen = live[entry[1]]
                break
            passed_over.append(entry)
        for entry in passed_over:
            heapq.heappush(heap, entry)
        if chosen is None:
            result[project.name] = place(project, live.values())
            continue
        updated = with_project(chosen, project)
        live[chosen.name] = updated
        heapq.heappush(heap, (_rank(updated), chosen.name))
        result[project.name] = Placement(chosen.name)
    return result


def plan_balance(
    assignments: Mapping[str, str],
    needs: Mapping[str, ProjectNeed],
    nodes: Iterable[NodeView],
    max_moves: int,
    movable: Iterable[str] | None = None,
) -> list[Move]:
    """Moves that bring project counts on schedulable nodes within one of each other.

    `assignments` maps project name to node name (projects already moving count at their
    target). Only projects in `movable` (default: all) are moved, and at most `max_moves`.
    A project moves only to a node it fits; the result is deterministic.
    """
    views = {n.name: n for n in nodes if n.schedulable}
    if len(views) < 2 or max_moves <= 0:
        return []
    allowed = set(assignments if movable is None else movable)
    on_node: dict[str, list[str]] = {name: [] for name in views}
    for project, node in sorted(assignments.items()):
        if node in on_node:
            on_node[node].append(project)
    moves: list[Move] = []
    while len(moves) < max_moves:
        by_load = sorted(views.values(), key=lambda n: (len(on_node[n.name]), n.name))
        light = by_load[0]
        heavy_nodes = [
            n for n in reversed(by_load) if len(on_node[n.name]) - len(on_node[light.name]) > 1
        ]
        move = None
        for heavy in heavy_nodes:
            for project in on_node[heavy.name]:
                if project in allowed and fits(needs[project], light):
                    move = Move(project, heavy.name, light.name)
                    break
            if move:
                break
        if move is None:
            break
        need = needs[move.project]
        on_node[move.source].remove(move.project)
        on_node[move.target].append(move.project)
        allowed.discard(move.project)
        views[move.source] = with_project(views[move.source], need, -1)
        views[move.target] = with_project(views[move.target], need)
        moves.append(move)
    return moves

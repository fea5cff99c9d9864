"""Placement and balance: pure functions of (projects, nodes), no I/O.

Placement follows the seed: among live nodes that fit the project (free RAM and storage, from
reported capacity minus what their projects use or asked for, and labels that meet the
project's `--on` constraints, DESIGN section 12), take the one with the least disk in use; ties
go to fewer projects, then to the name.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from syncopate.constraints import Constraint, matches


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
    labels: Mapping[str, str] = field(default_factory=dict)

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
    constraints: tuple[Constraint, ...] = ()  # all must hold on its node


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
    """True when the node is schedulable, meets the project's constraints and has the RAM and
    storage the project needs."""
    return (
        node.schedulable
        and node.free_ram >= project.ram
        and node.free_storage >= project.disk
        and matches(project.constraints, node.labels)
    )


def rank(node: NodeView) -> tuple[float, int, str]:
    """A node's place in placement's order, lowest first: least disk in use, then fewest
    projects, then the name (so no two nodes tie)."""
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
    if project.constraints:
        live = [n for n in live if matches(project.constraints, n.labels)]
        if not live:
            return Placement(None, unmet_reason(project.constraints, candidates))
    fitting = [n for n in live if fits(project, n)]
    if fitting:
        return Placement(min(fitting, key=rank).name)
    return Placement(None, _room_reason(project, live))


def unmet_reason(constraints: Sequence[Constraint], nodes: Iterable[NodeView]) -> str:
    """Why no live node meets `constraints`: the ones no live node meets, each on its own, or
    (when each is met somewhere) that none meets them all together."""
    live = [n for n in nodes if n.schedulable]
    alone = [c for c in constraints if not any(c.met_by(n.labels) for n in live)]
    if alone:
        noun = "constraint" if len(alone) == 1 else "constraints"
        return f"no live node meets {noun} " + ", ".join(str(c) for c in alone)
    together = " and ".join(str(c) for c in constraints)
    return f"no live node meets constraints {together} together"


def _room_reason(project: ProjectNeed, live: Sequence[NodeView]) -> str:
    """Why none of `live` (the schedulable nodes meeting its constraints) has room for it."""
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
    where = "no live node"
    if project.constraints:
        where += " on " + ", ".join(str(c) for c in project.constraints)
    return f"{where} has " + " and ".join(needs)


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
        labels=node.labels,
    )


Entry = tuple[tuple[float, int, str], str]  # (rank, node name) in a heap


class _Heaps:
    """The live nodes in heaps ordered by placement rank: one heap per distinct constraint set
    (the empty set: every live node), each built when a project first asks for it.

    A node's entries go stale when it takes a project; its new entry is pushed onto every heap
    it belongs to and the stale ones are dropped as they surface, so a project costs
    O(log nodes) for each heap its node is in when the best-ranked matching node fits. Building
    a heap scans every live node once.
    """

    def __init__(self, live: dict[str, NodeView]) -> None:
        self.live = live
        self.heaps: dict[tuple[Constraint, ...], list[Entry]] = {}
        self.member_of: dict[str, list[list[Entry]]] = {name: [] for name in live}
        self.matching: dict[tuple[Constraint, ...], int] = {}  # how many nodes meet each set

    def of(self, constraints: tuple[Constraint, ...]) -> list[Entry]:
        """The heap of the live nodes that meet `constraints`."""
        heap = self.heaps.get(constraints)
        if heap is None:
            members = [v for v in self.live.values() if matches(constraints, v.labels)]
            heap = [(rank(v), v.name) for v in members]
            heapq.heapify(heap)
            self.heaps[constraints] = heap
            self.matching[constraints] = len(members)
            for view in members:
                self.member_of[view.name].append(heap)
        return heap

    def take(self, project: ProjectNeed) -> NodeView | None:
        """The best-ranked node that fits `project`, now counting it there; None if none fits."""
        heap = self.of(project.constraints)
        passed_over: list[Entry] = []
        chosen: NodeView | None = None
        while heap:
            entry = heapq.heappop(heap)
            view = self.live[entry[1]]
            if entry[0] != rank(view):
                continue  # stale: the node took a project since, its newer entry is here too
            if fits(project, view):
                chosen = view
                break
            passed_over.append(entry)
        for entry in passed_over:
            heapq.heappush(heap, entry)
        if chosen is None:
            return None
        updated = with_project(chosen, project)
        self.live[chosen.name] = updated
        fresh = (rank(updated), chosen.name)
        for member_heap in self.member_of[chosen.name]:
            heapq.heappush(member_heap, fresh)
        return updated


def place_many(projects: Sequence[ProjectNeed], nodes: Iterable[NodeView]) -> dict[str, Placement]:
    """Place several projects one after another, each seeing the ones placed before it.

    The same choice as `place` for each, but the live nodes sit in heaps ordered by the
    placement rank (one per distinct constraint set, see `_Heaps`), so a failover of thousands
    of projects costs O(log nodes) per project when the best-ranked matching node fits.
    """
    if len(projects) == 1:
        # One project (an add, a start): a plain scan beats building the heap.
        return {projects[0].name: place(projects[0], nodes)}
    candidates = list(nodes)
    live = {n.name: n for n in candidates if n.schedulable}
    heaps = _Heaps(live)
    # Why no node meets a constraint set does not depend on the project: said once per set.
    unmet: dict[tuple[Constraint, ...], str] = {}
    result: dict[str, Placement] = {}
    for project in sorted(projects, key=lambda p: p.name):
        chosen = heaps.take(project)
        if chosen is not None:
            result[project.name] = Placement(chosen.name)
        elif live and not heaps.matching[project.constraints]:
            if project.constraints not in unmet:
                unmet[project.constraints] = unmet_reason(project.constraints, live.values())
            result[project.name] = Placement(None, unmet[project.constraints])
        elif live:
            result[project.name] = place(project, live.values())
        else:
            result[project.name] = place(project, candidates)  # says why none is live
    return result


def plan_balance(
    assignments: Mapping[str, str],
    needs: Mapping[str, ProjectNeed],
    nodes: Iterable[NodeView],
    max_moves: int,
    movable: Iterable[str] | None = None,
    receivers: Iterable[str] | None = None,
    per_target: int | None = None,
) -> list[Move]:
    """Moves that bring project counts on schedulable nodes within one of each other.

    `assignments` maps project name to node name (projects already moving count at their
    target). Only projects in `movable` (default: all) are moved, only to nodes in `receivers`
    (default: every schedulable node), at most `per_target` to any one node (default: no
    limit) and at most `max_moves` in all. A project moves only to a node it fits (room and
    constraints); the result is deterministic.
    """
    views = {n.name: n for n in nodes if n.schedulable}
    if len(views) < 2 or max_moves <= 0:
        return []
    allowed = set(assignments if movable is None else movable)
    open_to = set(views if receivers is None else receivers) & set(views)
    on_node: dict[str, list[str]] = {name: [] for name in views}
    for project, node in sorted(assignments.items()):
        if node in on_node:
            on_node[node].append(project)
    received: dict[str, int] = {}
    moves: list[Move] = []
    while len(moves) < max_moves and open_to:
        move = _next_move(views, on_node, open_to, allowed, needs)
        if move is None:
            break
        need = needs[move.project]
        on_node[move.source].remove(move.project)
        on_node[move.target].append(move.project)
        allowed.discard(move.project)
        views[move.source] = with_project(views[move.source], need, -1)
        views[move.target] = with_project(views[move.target], need)
        moves.append(move)
        received[move.target] = received.get(move.target, 0) + 1
        if per_target is not None and received[move.target] >= per_target:
            open_to.discard(move.target)
    return moves


def _next_move(
    views: Mapping[str, NodeView],
    on_node: Mapping[str, list[str]],
    open_to: set[str],
    allowed: set[str],
    needs: Mapping[str, ProjectNeed],
) -> Move | None:
    """One move from a node with at least two projects more than the lightest receiver that
    can take one of them (its constraints or room may rule a receiver out: try the next)."""
    by_load = sorted(views.values(), key=lambda n: (len(on_node[n.name]), n.name))
    for light in by_load:
        if light.name not in open_to:
            continue
        floor = len(on_node[light.name])
        heavy_nodes = []
        for node in reversed(by_load):
            if len(on_node[node.name]) - floor <= 1:
                break
            heavy_nodes.append(node)
        if not heavy_nodes:
            return None  # a more loaded receiver has no node further above it either
        for heavy in heavy_nodes:
            for project in on_node[heavy.name]:
                if project in allowed and fits(needs[project], light):
                    return Move(project, heavy.name, light.name)
    return None

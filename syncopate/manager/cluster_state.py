"""The cluster's records in memory, and the indexes and placement views derived from them.

`ClusterState` holds every node and project record, which projects are placed on each node and
which are moving to it, each node's placement view (a cache: only nodes marked stale are
recomputed), the schedulable nodes in placement order (rank_index.py: one placement needs no
scan), the alive nodes in the order they were heard from (contact_order.py: finding the silent
ones needs no scan either), the nodes that may be alive but take no projects, and the work the
monitor owes. It changes no record itself: the cluster's writes do
(cluster.py and its parts), and keep these indexes right as they go.
"""

from __future__ import annotations

import time
from functools import lru_cache

from syncopate import constraints
from syncopate.manager import scheduler
from syncopate.manager.contact_order import ContactOrder
from syncopate.manager.rank_index import RankIndex
from syncopate.manager.records import NodeRecord, ProjectRecord
from syncopate.manager.storage import Storage
from syncopate.states import NodeStatus


class ClusterState:
    """Nodes and projects by name, and what is derived from them."""

    def __init__(self) -> None:
        self.nodes: dict[str, NodeRecord] = {}
        self.projects: dict[str, ProjectRecord] = {}
        self.on_node: dict[str, set[str]] = {}  # node -> projects placed there
        self.incoming: dict[str, set[str]] = {}  # move target -> projects moving there
        # Placement views of nodes, recomputed only for nodes whose load or state changed.
        self.view_cache: dict[str, scheduler.NodeView] = {}
        self.stale_views: set[str] = set()
        self.ranks = RankIndex()  # fed by `refresh`, from the views it recomputes
        self.contact = ContactOrder()  # kept by membership.py's touch and join
        # Every node that is ALIVE and not schedulable (drained, or a lite device) is in here,
        # and maybe others: `Cluster._node_changed` adds every node that changed, and the
        # monitor drops the ones it finds schedulable or not alive (monitor.py).
        self.unschedulable: set[str] = set()
        # Set by a change that may let the monitor do more; cleared when it has looked.
        self.balance_needed = True
        self.retry_needed = True
        # Monotonic time a young node may first receive balance moves (None: none waits).
        self.balance_at: float | None = None
        # Which nodes should hold every-node projects' copies may have changed (every_node.py).
        self.copies_needed = True
        # Seed-dialect node -> the projects placed there that its last /node-status answer
        # left out (it should not run them): see Reports.seed_poll. Memory only.
        self.seed_omitted: dict[str, set[str]] = {}
        # Placements of one project (`place`) so far and their time, s: /metrics shows them,
        # the manager's own placement time under load (issue 18: < 1 ms at 10,000 nodes).
        self.placements = 0
        self.placement_seconds = 0.0

    def load(self, storage: Storage, now: float) -> None:
        """Read every record from the store and build the indexes (at start)."""
        for node in storage.load_nodes():
            # After a restart every known node gets a full node-timeout before it can be dead,
            # and counts as alive since now for calm balance (monitor.py).
            node.last_contact = node.alive_since = now
            self.nodes[node.name] = node
            self.on_node[node.name] = set()
        for project in storage.load_projects():
            project.move_started = now
            self.projects[project.name] = project
            if project.node is not None:
                self.on_node.setdefault(project.node, set()).add(project.name)
            if project.moving_to is not None:
                self.incoming.setdefault(project.moving_to, set()).add(project.name)
        self.stale_views.update(self.nodes)
        self.contact.rebuild(self.nodes)
        self.unschedulable.update(self.nodes)

    def index(self, project: ProjectRecord, add: bool) -> None:
        """Put a project into (or take it out of) the indexes, by its node and move target."""
        for index, where in ((self.on_node, project.node), (self.incoming, project.moving_to)):
            if where is None:
                continue
            if add:
                index.setdefault(where, set()).add(project.name)
            elif index is self.incoming:
                self.not_incoming(where, project.name)
            else:
                index.get(where, set()).discard(project.name)
            self.stale_views.add(where)

    def not_incoming(self, target: str, project_name: str) -> None:
        """A project no longer moves to `target`; a target with no move left leaves the index
        (the monitor reads it on every tick: it holds only the moves in flight)."""
        names = self.incoming.get(target)
        if names is not None:
            names.discard(project_name)
            if not names:
                del self.incoming[target]

    def placed_on(self, node_name: str) -> list[str]:
        """The names of the projects placed on a node, sorted."""
        return sorted(self.on_node.get(node_name, ()))

    def moving(self) -> list[ProjectRecord]:
        """The projects with a move in progress."""
        return [self.projects[n] for names in self.incoming.values() for n in sorted(names)]

    @staticmethod
    def need(project: ProjectRecord) -> scheduler.ProjectNeed:
        """What a project takes from a node: what it asked for, or what it uses if more."""
        return scheduler.ProjectNeed(
            project.name,
            max(project.ram, project.ram_usage),
            max(project.disk, project.disk_usage),
            parsed_constraints(tuple(project.constraints)),
        )

    def views(self) -> list[scheduler.NodeView]:
        """Every node as placement sees it; only nodes marked stale are recomputed."""
        return list(self.refresh().values())

    def view(self, name: str) -> scheduler.NodeView | None:
        """One node as placement sees it (None: no such node)."""
        return self.refresh().get(name)

    def place(self, need: scheduler.ProjectNeed, exclude: str | None = None) -> scheduler.Placement:
        """`scheduler.place(need, views)` (without the node `exclude`), mostly without a scan:
        the first fitting node in rank order is looked for in the rank index, and only when
        it finds none (none fits, or only rare ones) are all the views scanned, which also
        says why none fits."""
        started = time.perf_counter()
        views = self.refresh()
        found = self.ranks.first_fit(need, views, exclude)
        if found is not None:
            placement = scheduler.Placement(found)
        else:
            candidates = [v for v in views.values() if v.name != exclude]
            placement = scheduler.place(need, candidates)
        self.placements += 1
        self.placement_seconds += time.perf_counter() - started
        return placement

    def place_many(self, needs: list[scheduler.ProjectNeed]) -> dict[str, scheduler.Placement]:
        """`scheduler.place_many(needs, views)`: one project through `place` (an add, a
        start), several with the scheduler's own heaps (a failover: their build is paid
        once for them all)."""
        if len(needs) == 1:
            return {needs[0].name: self.place(needs[0])}
        return scheduler.place_many(needs, self.views())

    def refresh(self) -> dict[str, scheduler.NodeView]:
        """Recompute the stale views (and their nodes' places in the rank index); every
        node's view, by name."""
        for name in self.stale_views:
            node = self.nodes.get(name)
            if node is None:
                self.view_cache.pop(name, None)
                self.ranks.update(name, None)
                continue
            disk = ram = 0.0
            names = self.on_node.get(name, set()) | self.incoming.get(name, set())
            for project_name in names:
                need = self.need(self.projects[project_name])
                disk += need.disk
                ram += need.ram
            view = scheduler.NodeView(
                name, node.schedulable, node.storage, node.ram, disk, ram, len(names), node.labels
            )
            self.view_cache[name] = view
            self.ranks.update(name, view)
        self.stale_views.clear()
        return self.view_cache

    def alive_unschedulable(self) -> list[NodeRecord]:
        """The nodes that are ALIVE and take no projects (drained, lite), by name; the
        others in `unschedulable` are dropped from it on the way."""
        found = []
        for name in list(self.unschedulable):
            node = self.nodes.get(name)
            if node is None or node.status is not NodeStatus.ALIVE or node.schedulable:
                self.unschedulable.discard(name)
            else:
                found.append(node)
        return sorted(found, key=lambda n: n.name)


@lru_cache(maxsize=4096)
def parsed_constraints(texts: tuple[str, ...]) -> tuple[constraints.Constraint, ...]:
    """A project's stored `--on` constraints, parsed (once per distinct list: placement asks
    for every project's need on every pass)."""
    return tuple(constraints.parse_all(texts))

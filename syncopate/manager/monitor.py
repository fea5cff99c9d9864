"""The monitor's tick: liveness, overdue moves, drained nodes, unplaced projects and balance.

The manager calls `Cluster.tick()` often (every second). Each step is its own write, so a step
the store refuses changes nothing and the next tick finds the same work again; the moves
themselves are placement.py's, and the choices the pure scheduler's.
"""

from __future__ import annotations

import logging
from collections import Counter
from contextlib import suppress
from typing import TYPE_CHECKING

from syncopate.errors import StoreFailed
from syncopate.manager import scheduler
from syncopate.manager.placement import Placement
from syncopate.manager.records import NodeRecord, ProjectRecord
from syncopate.states import Desired, NodeStatus, ProjectStatus

if TYPE_CHECKING:
    from syncopate.manager.cluster import Cluster

log = logging.getLogger("syncopate.manager")

# The shortest time between two balance passes that young nodes coming of age ask for, s.
BALANCE_GRAIN = 1.0


class Monitor:
    """The periodic work of the cluster, in the order a tick does it."""

    def __init__(self, cluster: Cluster, placement: Placement) -> None:
        self.cluster = cluster
        self.state = cluster.state
        self.placement = placement

    def tick(self) -> None:
        """Liveness, overdue moves, retries of unplaced projects, and balance. Called often.

        A step the store refuses changed nothing; the next tick finds the same work and tries
        again (the store logs the failure), so the monitor never stops over a full disk.
        """
        with suppress(StoreFailed):
            self._tick()

    def _tick(self) -> None:
        # The order matters: the dead are declared before anything is placed onto them.
        now = self.cluster.clock()
        timeout = self.cluster.settings.node_timeout
        # Only the front of the contact order: the silent nodes are there (contact_order.py).
        silent = self.state.contact.silent(self.state.nodes, now, timeout)
        if silent:
            self._declare_dead(silent)
        for project in self.state.moving():
            if project.node is None:
                continue
            owner = self.state.nodes.get(project.node)
            overdue = now - project.move_started > timeout
            if owner is None or owner.status is NodeStatus.DEAD:
                with self.cluster._write(durable=True):
                    self.placement.fail_over([(project, f"node {project.node} is gone")])
            elif overdue and not project.exclusive:
                # A non-exclusive project whose node did not confirm the stop in time moves
                # anyway; the epoch check stops the old copy. An exclusive one waits.
                self.placement.complete_move(project)
        self.move_off_unschedulable()
        if self.state.copies_needed or self.state.retry_needed:
            self.cluster.copies.reconcile()  # nodes came, went, or changed labels
        if self.state.retry_needed:
            self._retry_unplaced()
            self.state.retry_needed = False
        if self.state.balance_at is not None and now >= self.state.balance_at:
            # A young node has now been alive long enough to receive balance moves.
            self.state.balance_at = None
            self.state.balance_needed = True
        if self.state.balance_needed and now - self.cluster.started >= timeout:
            self.state.balance_needed = False
            if self.cluster.settings.balance:
                self._balance(now)
        # Reports mark their nodes' views stale (usage changed); recomputed here, a tick's worth
        # at a time, and not all at once by the next placement: with usage changing in every
        # report, 10,000 stale views took 48 ms to recompute (4.4 us each, in process).
        self.state.refresh()

    def _declare_dead(self, nodes: list[NodeRecord]) -> None:
        """Mark silent nodes dead together, then fail their projects over in one pass.

        Together, so that no project is moved onto a node that is about to be declared dead
        in the same tick (many nodes go silent at once when a switch or a power strip fails).
        """
        orphans: list[tuple[ProjectRecord, str]] = []
        with self.cluster._write(durable=True):
            for node in nodes:
                self.cluster._set_node_status(node, NodeStatus.DEAD)
                self.cluster.store.save_node(node)
                self.cluster._node_changed(node.name)
            timeout = self.cluster.settings.node_timeout
            placed: dict[str, int] = {}
            for node in nodes:
                why = f"node {node.name} died (silent for {timeout:g}s)"
                names = self.state.placed_on(node.name)
                placed[node.name] = len(names)
                orphans.extend((self.state.projects[name], why) for name in names)
            self.placement.fail_over(orphans)
        # Said once the write stands (one the store refused declared nobody dead): without it
        # an operator cannot tell why a node's projects moved.
        for node in nodes:
            log.warning(
                "node %s is dead: silent for over %gs (last heard from %s), %d project(s) on it",
                node.name,
                timeout,
                node.address or "an unknown address",
                placed[node.name],
            )

    def move_off_unschedulable(self) -> None:
        """Begin moves for projects on alive nodes that were drained."""
        for node in self.state.alive_unschedulable():  # not a scan: see cluster_state.py
            for project_name in self.state.placed_on(node.name):
                project = self.state.projects[project_name]
                if project.moving_to is not None or project.copy_of is not None:
                    continue  # a copy is not moved: it goes away (every_node.py)
                placement = self.state.place(self.state.need(project))
                if placement.node is None:
                    reason = f"waiting to leave drained node: {placement.reason}"
                    if project.reason != reason:
                        with self.cluster._write():
                            self.cluster._keep(project)
                            project.reason = reason
                            self.cluster.store.save_project(project)
                            self.cluster._announce("project", project.name)
                    continue
                with self.cluster._write(durable=True):
                    self.placement.begin_move(project, placement.node, f"{node.name} is drained")

    def _retry_unplaced(self) -> None:
        """Place projects that want to run and have no node, now that something changed."""
        unplaced = sorted(
            (
                p
                for p in self.state.projects.values()
                if p.node is None
                and not p.every_node  # placed by its copies (every_node.py)
                and (p.desired is Desired.RUNNING or p.status is ProjectStatus.LOST)
            ),
            key=lambda p: p.name,
        )
        if not unplaced or not any(n.schedulable for n in self.state.nodes.values()):
            return
        before = {p.name: (p.status, p.reason) for p in unplaced}
        with self.cluster._write(durable=True):
            placements = self.state.place_many([self.state.need(p) for p in unplaced])
            for project in unplaced:
                placement = placements[project.name]
                if placement.node is not None:
                    self.placement.assign(project, placement.node)
                elif project.status not in (ProjectStatus.UNSCHEDULABLE, ProjectStatus.LOST):
                    # Not marked yet: say why it waits.
                    self.placement.place(project)
                elif (
                    project.constraints
                    and project.status is ProjectStatus.UNSCHEDULABLE
                    and placement.reason not in (project.reason, "")
                ):
                    # Still waiting for a node that meets its constraints, for another reason
                    # now (labels changed). Only these: a RAM reason's figures change with
                    # every placement, and rewriting them all each time is not worth it.
                    self.cluster._keep(project)
                    project.reason = placement.reason
                    self.cluster.store.save_project(project)
            for project in unplaced:
                if (project.status, project.reason) != before[project.name] or project.node:
                    self.cluster._announce("project", project.name)

    def _balance(self, now: float) -> None:
        """Begin the moves the scheduler plans to even the load, within the moves allowed.

        Calm (DESIGN section 12): a node receives balance moves only once it has been alive
        for 2 x node-timeout (one that just joined or came back may go again soon), one at a
        time (none while any move to it is in flight), and exclusive and `--stay` projects
        never move for balance. Failover and drain move projects regardless.
        """
        in_flight = len(self.state.moving())
        budget = self.cluster.settings.max_moves_in_flight - in_flight
        if budget <= 0:
            self.state.balance_needed = True
            return
        settle = self.cluster.settings.balance_after
        receivers = []
        schedulable = []
        next_ready: float | None = None
        for node in self.state.nodes.values():
            if not node.schedulable:
                continue
            schedulable.append(node.name)
            if self.state.incoming.get(node.name):
                continue
            if now - node.alive_since >= settle:
                receivers.append(node.name)
            else:
                ready = node.alive_since + settle
                next_ready = ready if next_ready is None else min(next_ready, ready)
        if next_ready is not None:
            # Look again when the next comes of age, but not sooner than a grain from now:
            # nodes that joined together come of age over seconds, and one pass (a scan of
            # every node and project) takes all that are ready by then.
            grain = min(BALANCE_GRAIN, self.cluster.settings.node_timeout / 4)
            next_ready = max(next_ready, now + grain)
            if self.state.balance_at is None or next_ready < self.state.balance_at:
                self.state.balance_at = next_ready
        if not receivers:
            return
        assignments: dict[str, str] = {}
        for project in self.state.projects.values():
            where = project.moving_to or project.node
            if where is not None and project.copy_of is None:  # copies never balance
                assignments[project.name] = where
        load = Counter(assignments.values())
        if max(map(load.__getitem__, schedulable)) - min(map(load.__getitem__, receivers)) < 2:
            # Counts within one of each other: plan_balance would find no move, and its needs
            # and views cost ~30 ms at 5,000 nodes (a pass per grain while a fleet settles).
            return
        movable = [
            p.name
            for p in self.state.projects.values()
            if p.node is not None
            and p.moving_to is None
            and not p.exclusive
            and not p.stay
            and p.copy_of is None
        ]
        needs = {name: self.state.need(self.state.projects[name]) for name in assignments}
        moves = scheduler.plan_balance(
            assignments, needs, self.state.views(), budget, movable, receivers, per_target=1
        )
        for move in moves:
            with self.cluster._write(durable=True):
                self.placement.begin_move(
                    self.state.projects[move.project], move.target, "to even the load"
                )
        if moves:
            # More may be needed once these have landed.
            self.state.balance_needed = True

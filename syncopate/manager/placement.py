"""Where projects run: placing, assigning, failing over and moving them (the cluster's part).

The choice of node is the pure `scheduler.py`'s; this module applies it to the records: a
project is assigned (a new epoch, PENDING on its node), unassigned, failed over when its node
is gone (to its move target if it had one, else placed afresh, else LOST), and moved in two
steps (begin: its node stops it; complete: it is assigned to the target). Every method runs
inside the cluster's open write (`Cluster._write`), keeping each record before changing it and
changing status only through `Cluster._set_status`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from syncopate import constraints
from syncopate.manager.cluster_state import parsed_constraints
from syncopate.manager.records import NodeRecord, ProjectRecord
from syncopate.states import NOT_RUNNING_STATUSES, Desired, ProjectStatus

if TYPE_CHECKING:
    from syncopate.manager.cluster import Cluster


def moved(node: str, why: str) -> str:
    """The note of a project moved to `node` because `why` (none when it was not moved)."""
    return f"moved to {node}: {why}" if why else ""


class Placement:
    """Assignments of projects to nodes, and moves between them."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.state = cluster.state

    def set_moving(self, project: ProjectRecord, target: str | None) -> None:
        """Start (target) or end (None) a move, keeping the incoming index and views right."""
        self.cluster._keep(project)
        if project.moving_to is not None:
            self.state.not_incoming(project.moving_to, project.name)
            self.state.stale_views.add(project.moving_to)
        project.moving_to = target
        if target is not None:
            self.state.incoming.setdefault(target, set()).add(project.name)
            self.state.stale_views.add(target)

    def may_run(self, project: ProjectRecord, node: NodeRecord | None) -> bool:
        """Whether `node` takes projects and meets the project's constraints."""
        return node is not None and node.schedulable and self.meets(project, node)

    @staticmethod
    def meets(project: ProjectRecord, node: NodeRecord) -> bool:
        """Whether `node`'s labels meet the project's constraints (`--on`)."""
        return constraints.matches(parsed_constraints(tuple(project.constraints)), node.labels)

    def place(self, project: ProjectRecord, lost_reason: str = "") -> None:
        """Assign an unplaced project to the best node, or mark it unschedulable (or lost)."""
        self.place_all([(project, lost_reason)])

    def place_all(self, items: list[tuple[ProjectRecord, str]]) -> None:
        """Place unplaced projects in one pass; `lost_reason` (if any) says why each was moved."""
        if not items:
            return
        placements = self.state.place_many([self.state.need(p) for p, _ in items])
        for project, lost_reason in items:
            placement = placements[project.name]
            if placement.node is not None:
                self.assign(project, placement.node, moved(placement.node, lost_reason))
                continue
            if lost_reason:
                status = ProjectStatus.LOST
            elif project.desired is Desired.STOPPED:
                status = ProjectStatus.STOPPED
            else:
                status = ProjectStatus.UNSCHEDULABLE
            self.cluster._set_status(
                project,
                status,
                f"{lost_reason}; {placement.reason}" if lost_reason else placement.reason,
            )
            if lost_reason:
                self.cluster.log.note(project, f"{lost_reason}; not moved: {placement.reason}")
            self.cluster.store.save_project(project)

    def assign(self, project: ProjectRecord, node_name: str, note: str = "") -> None:
        """Give a project to a node: a new epoch (so an older copy stops), PENDING there.

        `note`: a line for the project's log (`moved to pi-3: ...`); none when empty."""
        self.cluster._keep(project)
        if note:
            self.cluster.log.note(project, note)
        self.unassign(project)
        project.node = node_name
        self.set_moving(project, None)
        project.epoch += 1
        self.cluster._set_status(project, ProjectStatus.PENDING, "")
        project.pid = None
        project.started_at = None
        project.commit = None
        self.state.on_node.setdefault(node_name, set()).add(project.name)
        self.cluster.store.save_project(project)
        self.cluster._changed(node_name)

    def unassign(self, project: ProjectRecord) -> None:
        """Take a project off its node (its node hears at once); it is then unplaced."""
        self.cluster._keep(project)
        if project.node is not None:
            self.state.on_node.get(project.node, set()).discard(project.name)
            self.cluster._changed(project.node)
        project.node = None

    def fail_over(self, projects: list[tuple[ProjectRecord, str]]) -> None:
        """Place projects whose node is gone, carrying their last variables (one pass)."""
        copies = [(p, why) for p, why in projects if p.copy_of is not None]
        if copies:
            # An every-node project's copy never moves: it waits for its node (every_node.py).
            self.cluster.copies.node_gone(copies)
            projects = [(p, why) for p, why in projects if p.copy_of is None]
        unplaced: list[tuple[ProjectRecord, str]] = []
        for project, why in projects:
            target = project.moving_to
            self.unassign(project)
            self.set_moving(project, None)
            node = self.state.nodes.get(target) if target is not None else None
            if node is not None and self.may_run(project, node):
                self.assign(project, node.name, moved(node.name, why))
            else:
                unplaced.append((project, why))
        self.place_all(unplaced)
        for project, _ in projects:
            self.cluster._announce("project", project.name)

    def begin_move(self, project: ProjectRecord, target: str, why: str = "") -> None:
        """Start moving a project: its node is told to stop it (a stopped one moves at once).

        `why` goes into the project's log with the move (`moving to pi-3: ...`)."""
        self.cluster.log.note(project, f"moving to {target}" + (f": {why}" if why else ""))
        self.set_moving(project, target)
        project.move_started = self.cluster.clock()
        if project.desired is Desired.STOPPED or project.status in NOT_RUNNING_STATUSES:
            self.complete_move(project)
            return
        self.cluster.store.save_project(project)
        self.cluster._changed(project.node)
        self.cluster._announce("project", project.name)

    def complete_move(self, project: ProjectRecord) -> None:
        """Finish a move: assign the project to its target, or place it anew if that is gone."""
        target = project.moving_to
        with self.cluster._write(durable=True):
            self.set_moving(project, None)
            node = self.state.nodes.get(target) if target else None
            if node is not None and self.may_run(project, node):
                self.assign(project, node.name, f"moved to {node.name} from {project.node}")
            else:
                self.unassign(project)
                self.place(project, lost_reason="its move target went away")
            self.state.balance_needed = True
            self.cluster._announce("project", project.name)

    def move_elsewhere(self, project: ProjectRecord) -> None:
        """Move a placed project off its node to the best other node it may run on (it outgrew
        its node, or the node's labels or its constraints changed); with none, it is taken off
        at once and waits unplaced, saying why."""
        target = self.state.place(self.state.need(project), exclude=project.node).node
        if target is not None:
            self.begin_move(project, target, f"it no longer fits or may run on {project.node}")
            self.cluster.store.save_project(project)
            return
        self.unassign(project)
        self.place(project)

"""Every-node projects (`add --every-node`, DESIGN section 12): one copy on each matching node.

The parent record (`every_node`, `copy_of` None) holds the spec and is never placed. Each copy
is a project record of its own, named `PARENT@NODE` (no project can have that name: '@' is not
allowed in one), with `copy_of` naming the parent and its node fixed for its whole life; so it
has its own variables, status, epoch, commit, usage and log, kept by
the same report, epoch, log and store machinery as any project. Its node sees it under the
parent's name (answers.node_status), and a node's report on the parent's name lands on that
node's copy (`resolve`).

A new copy starts with the parent's variables: its `initial_variables`, plus what
`set-variables` (`project vars`) wrote into the parent since (it writes into every copy too);
`reset` on the parent puts them, and every copy's, back to `initial_variables`.

Which copies exist is decided in one place, `Copies.reconcile`, from the pure `plan`:

- an agent node that is alive, not drained and meets the constraints gets a copy (at once: the
  cluster reconciles after a join, drain, undrain, forget, add and set, and the monitor's tick
  whenever something else may have changed it: a node coming back, a label);
- a dead node (silent, or its agent stopped) keeps its copy: it is not moved elsewhere; it is
  `lost` with the reason (`node_gone`), and resumes when the node comes back;
- a drained, forgotten or lite node's copy goes away, and so does a copy whose node no longer
  meets the constraints. Its variables go with it: a drained node is out of service, and when
  it is undrained it gets a fresh copy from the parent's variables, as a new node does.

Copies never take part in balance or failover (monitor.py and placement.py skip them). Epochs
only grow on a node, even across a deleted and re-made copy: the parent's epoch is the floor a
new copy starts above.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from syncopate import constraints
from syncopate.errors import InvalidRequest
from syncopate.manager import changes
from syncopate.manager.records import NodeRecord, ProjectRecord, utc_now
from syncopate.states import Desired, NodeStatus, ProjectStatus

if TYPE_CHECKING:
    from syncopate.manager.cluster import Cluster

P = ParamSpec("P")
T = TypeVar("T")
# What a copy takes from its parent, at creation and after every `set` on the parent.
SPEC_FIELDS = (
    "url",
    "initial_variables",
    "command",
    "ref",
    "ram",
    "disk",
    "exclusive",
    "env",
    "secrets",
    "constraints",
    "every_node",
    "stay",
    "health_cmd",
    "health_http",
    "health_interval",
    "health_timeout",
    "health_retries",
    "grace",
    "max_ram",
    "rollout_retry",
)
# The parent's summary status when its copies differ: the first of these any copy has.
ATTENTION_ORDER = (
    ProjectStatus.FAILED,
    ProjectStatus.UNHEALTHY,
    ProjectStatus.ROLLED_BACK,
    ProjectStatus.CRASHED,
    ProjectStatus.LOST,
    ProjectStatus.UNSCHEDULABLE,
    ProjectStatus.CLONING,
    ProjectStatus.STARTING,
    ProjectStatus.PENDING,
    ProjectStatus.STOPPED,
    ProjectStatus.RUNNING,
)


def copy_key(parent: str, node: str) -> str:
    """The record name of `parent`'s copy on `node`."""
    return f"{parent}@{node}"


def is_parent(project: ProjectRecord) -> bool:
    """An every-node project's own record: the spec, never placed."""
    return project.every_node and project.copy_of is None


@dataclass(frozen=True)
class CopyPlan:
    create: list[str]  # nodes that get a copy now
    delete: list[str]  # nodes whose copy goes away


def wanted_on(rules: Sequence[constraints.Constraint], node: NodeRecord) -> bool:
    """Whether `node` should hold a copy at all (alive or not): an undrained agent that meets
    the constraints."""
    return node.kind == "agent" and not node.drained and constraints.matches(rules, node.labels)


def plan(
    rules: Sequence[constraints.Constraint], nodes: Mapping[str, NodeRecord], have: Iterable[str]
) -> CopyPlan:
    """Which copies to make and which to delete, given the nodes and the nodes that hold one.

    A live node that should hold a copy and has none gets one; a dead one does not (it gets it
    when it comes back), and a dead one that has one keeps it. A copy on a node that is gone,
    drained, lite or no longer matching is deleted.
    """
    held = set(have)
    create = sorted(
        name
        for name, node in nodes.items()
        if name not in held and node.schedulable and wanted_on(rules, node)
    )
    delete = sorted(name for name in held if name not in nodes or not wanted_on(rules, nodes[name]))
    return CopyPlan(create, delete)


def summary(parent: ProjectRecord, copies: Sequence[ProjectRecord]) -> tuple[str, str]:
    """The parent's status and reason as its copies make them."""
    if not copies:
        if parent.desired is Desired.STOPPED:
            return ProjectStatus.STOPPED.value, ""
        where = f" meets {' '.join(parent.constraints)}" if parent.constraints else ""
        return ProjectStatus.UNSCHEDULABLE.value, f"no live node{where}; a copy waits for one"
    statuses = {c.status for c in copies}
    status = next(s for s in ATTENTION_ORDER if s in statuses)
    reasons = [f"{c.node}: {c.reason}" for c in copies if c.status is status and c.reason]
    return status.value, "; ".join(reasons)


def copy_info(copy: ProjectRecord) -> dict[str, Any]:
    """One copy as its parent's `copies` map shows it (the `status` answer)."""
    return {
        "name": copy.name,
        "node": copy.node,
        "status": copy.status.value,
        "reason": copy.reason or None,
        "desired": copy.desired.value,
        "commit": copy.commit,
        "persistent-variables": copy.variables,
        "epoch": copy.epoch,
        "pid": copy.pid,
        "restarts": copy.restarts,
        "exit-code": copy.exit_code,
        "started-at": copy.started_at,
        "updated-at": copy.updated_at,
        "ram-usage": copy.ram_usage,
        "disk-usage": copy.disk_usage,
        "log-tail": copy.log_tail,
    }


class Copies:
    """The cluster's part that keeps every every-node project's copies right."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.state = cluster.state

    # reading ----------------------------------------------------------------------------------
    def of(self, parent: ProjectRecord) -> list[ProjectRecord]:
        """The parent's copies on the known nodes, by node name."""
        projects = self.state.projects
        found = (projects.get(copy_key(parent.name, node)) for node in sorted(self.state.nodes))
        return [c for c in found if c is not None and c.copy_of == parent.name]

    def info(self, parent: ProjectRecord, answer: dict[str, Any]) -> dict[str, Any]:
        """The parent's `status` answer with its copies and the summary status they make."""
        copies = self.of(parent)
        status, reason = summary(parent, copies)
        running = sum(1 for c in copies if c.status is ProjectStatus.RUNNING)
        commits = {c.commit for c in copies}
        return {
            **answer,
            "status": status,
            "reason": reason or None,
            # What all the copies use, and the commit when they all run the same one.
            "ram-usage": sum(c.ram_usage for c in copies),
            "disk-usage": sum(c.disk_usage for c in copies),
            "restarts": sum(c.restarts for c in copies),
            "commit": commits.pop() if len(commits) == 1 else None,
            "copies": {c.node: copy_info(c) for c in copies if c.node is not None},
            "copies-running": running,
            "copies-total": len(copies),
        }

    def expand(self, projects: Iterable[ProjectRecord]) -> list[ProjectRecord]:
        """The projects, each every-node parent followed by its copies (for controller
        actions on the parent, which act on every copy)."""
        out: dict[str, ProjectRecord] = {}
        for project in projects:
            out[project.name] = project
            if is_parent(project):
                out.update((c.name, c) for c in self.of(project))
        return list(out.values())

    def resolve(self, project: ProjectRecord, node: str) -> ProjectRecord | None:
        """The record a node's report on `project` is about: for a parent, its copy there."""
        if not is_parent(project):
            return project
        return self.state.projects.get(copy_key(project.name, node))

    def check_logs(self, project: ProjectRecord) -> None:
        """A parent has no output of its own: the error names the copies to ask for."""
        if is_parent(project):
            names = ", ".join(c.name for c in self.of(project)) or "none yet"
            raise InvalidRequest(
                f"{project.name} runs a copy on every node; name one as PROJECT@NODE "
                f"(copies: {names})"
            )

    # writes (inside the cluster's open write) -------------------------------------------------
    def node_gone(self, copies: list[tuple[ProjectRecord, str]]) -> None:
        """Copies whose node died, left, was forgotten or became lite: they stay (lost, with
        the reason) and are not moved; `reconcile` deletes those whose node will not return."""
        for copy, why in copies:
            if copy.status is ProjectStatus.STOPPED and copy.desired is Desired.STOPPED:
                continue
            self.cluster._set_status(
                copy, ProjectStatus.LOST, f"{why}; its copy waits for it (not moved)"
            )
            self.cluster.store.save_project(copy)
            self.cluster._announce("project", copy.name)
        self.state.copies_needed = True

    def follow(self, parent: ProjectRecord, fields: list[str], said: str = "") -> None:
        """After `set` on the parent: every copy takes the new spec (restarting once when the
        process must see it), and a change of constraints makes or deletes copies. `said`
        goes into each copy's log."""
        restart = bool(changes.RESTART_FIELDS & set(fields))
        for copy in self.of(parent):
            self.cluster._keep(copy)
            _take_spec(parent, copy)
            if said:
                self.cluster.log.note(copy, said)
            if restart:
                copy.restart += 1
            self.cluster.store.save_project(copy)
            self.cluster._changed(copy.node)
        if "constraints" in fields:
            self.reconcile_parents([parent])
        self.cluster._announce("project", parent.name)

    def remove_all(self, parent: ProjectRecord) -> None:
        """The parent is being removed: so are all its copies (their nodes stop them)."""
        for copy in self.of(parent):
            self._delete(None, copy)  # not `parent`: its record is not to be saved again

    def along(self, change: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Make a node change (join, drain, undrain, forget) and the copies it makes or
        deletes in one write: both happen, or (refused) neither."""
        with self.cluster._write(durable=True):
            result = change(*args, **kwargs)
            self.reconcile()
        return result

    def reconcile(self) -> None:
        """Make and delete copies of every every-node project as `plan` says (the monitor's
        tick calls this when something may have changed which nodes should hold one)."""
        self.state.copies_needed = False
        parents = [p for p in self.state.projects.values() if is_parent(p)]
        strays = [
            p
            for p in self.state.projects.values()
            if p.copy_of is not None and not self._has_parent(p)
        ]
        if strays:
            with self.cluster._write(durable=True):
                for stray in strays:
                    self._delete(None, stray)
        if parents:
            self.reconcile_parents(parents)

    def reconcile_parents(self, parents: list[ProjectRecord]) -> None:
        """`reconcile` for these parents; opens a write only when something changes."""
        held: dict[str, dict[str, ProjectRecord]] = {p.name: {} for p in parents}
        for project in self.state.projects.values():
            if project.copy_of in held and project.node is not None:
                held[project.copy_of][project.node] = project
        work = []
        for parent in parents:
            copies = held[parent.name]
            steps = plan(constraints.parse_all(parent.constraints), self.state.nodes, copies)
            back = [
                copy
                for node, copy in copies.items()
                if copy.status is ProjectStatus.LOST
                and node not in steps.delete
                and self.state.nodes[node].status is NodeStatus.ALIVE
            ]
            if steps.create or steps.delete or back:
                work.append((parent, copies, steps, back))
        if not work:
            return
        with self.cluster._write(durable=True):
            for parent, copies, steps, back in work:
                for node in steps.delete:
                    self._delete(parent, copies[node])
                for node in steps.create:
                    self._create(parent, node)
                for copy in back:
                    # Its node is back: it resumes there under the same epoch (the node may
                    # have kept it running, and its variables are newer than ours).
                    self.cluster._set_status(copy, ProjectStatus.PENDING, "")
                    self.cluster.store.save_project(copy)
                    self.cluster._changed(copy.node)
                    self.cluster._announce("project", parent.name)

    def _has_parent(self, copy: ProjectRecord) -> bool:
        parent = self.state.projects.get(copy.copy_of or "")
        return parent is not None and is_parent(parent)

    def _create(self, parent: ProjectRecord, node: str) -> None:
        copy = ProjectRecord(
            name=copy_key(parent.name, node),
            url=parent.url,
            variables=dict(parent.variables),
            desired=parent.desired,
            epoch=parent.epoch,  # assign() adds one: above any copy this node had before
            copy_of=parent.name,
            created_at=utc_now(),
        )
        _take_spec(parent, copy)
        assert self.cluster._undo is not None
        self.cluster._undo.keep_entry(self.state.projects, copy.name)
        self.state.projects[copy.name] = copy
        self.cluster.placement.assign(copy, node)
        if copy.desired is Desired.STOPPED:
            self.cluster._set_status(copy, ProjectStatus.STOPPED)
            self.cluster.store.save_project(copy)
        self._raise_floor(parent, copy)
        self.cluster._announce("project", parent.name)

    def _delete(self, parent: ProjectRecord | None, copy: ProjectRecord) -> None:
        self.cluster.store.delete_project(copy.name)
        self.cluster.store.delete_log_lines(copy.name)
        self.cluster.placement.unassign(copy)
        assert self.cluster._undo is not None
        self.cluster._undo.keep_entry(self.state.projects, copy.name)
        del self.state.projects[copy.name]
        if parent is not None:
            self._raise_floor(parent, copy)
            self.cluster._announce("project", parent.name)

    def _raise_floor(self, parent: ProjectRecord, copy: ProjectRecord) -> None:
        """The parent's epoch stays at least every copy's, so a re-made copy starts above."""
        if copy.epoch > parent.epoch:
            self.cluster._keep(parent)
            parent.epoch = copy.epoch
            self.cluster.store.save_project(parent)


def _take_spec(parent: ProjectRecord, copy: ProjectRecord) -> None:
    """Copy the parent's spec into a copy (new containers: undo keeps references)."""
    for name in SPEC_FIELDS:
        value = getattr(parent, name)
        if isinstance(value, dict):
            value = dict(value)
        elif isinstance(value, list):
            value = list(value)
        setattr(copy, name, value)

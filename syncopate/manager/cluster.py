"""The cluster: nodes, projects and who runs what. The one place the manager's rules live.

Routes call the `Cluster` facade and translate its answers (or `RequestError`s) to HTTP. Every
change is written to the store before the method returns, so an acknowledged change survives a
crash; ownership and controller changes are written durably (fsync).

Every change happens inside `Cluster._write()`: memory and store change together or not at all.
A write the store refuses (StoreFailed, 503) puts back every record it touched (see undo.py),
re-derives the indexes from them and drops its events, so the manager holds what the database
holds; the monitor tries again on its next tick. Every status change goes through one of the
`_set_*status` methods here, a project's own through the transition table in states.py.

This file holds that machinery and finding projects by name; the rest are parts the facade
owns and calls (they call back into the machinery above):

- cluster_state.py: the records in memory, their indexes and placement views; loading them;
- project_actions.py: the controller's actions (add, set, set-variables, remove, start, stop,
  restart, reset, rollout --retry); changes.py: what `set` and `set-variables` change;
- membership.py: nodes joining, authenticating, speaking, leaving, drained and forgotten;
- reports.py: a node's reports on its projects; project_log.py: their output lines, with
  times, and the manager's notes in them (stopped by, moved to);
- placement.py: assigning, failing over and moving projects, around the pure scheduler.py;
- monitor.py: the periodic tick (liveness, overdue moves, retries, balance);
- every_node.py: the copies of every-node projects, one per matching node;
- longpoll.py: held /node-status polls; answers.py: the answers to queries;
- storage.py: what the cluster asks of the database (store.py is the SQLite one).
"""

from __future__ import annotations

import asyncio
import difflib
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from syncopate.errors import NotFound
from syncopate.manager import answers
from syncopate.manager.cluster_state import ClusterState
from syncopate.manager.every_node import Copies, is_parent
from syncopate.manager.group_commit import GroupCommit
from syncopate.manager.longpoll import LongPoll
from syncopate.manager.membership import Membership
from syncopate.manager.monitor import Monitor
from syncopate.manager.placement import Placement
from syncopate.manager.project_actions import ProjectActions
from syncopate.manager.project_log import ProjectLog
from syncopate.manager.records import NodeRecord, ProjectRecord
from syncopate.manager.reports import Reports
from syncopate.manager.storage import Storage
from syncopate.manager.undo import Undo, Undoable
from syncopate.project_protocol import AddProject, RemoveProject, SetProject
from syncopate.protocol import InitializeRequest, NodeMetrics, ProjectReport
from syncopate.states import NodeStatus, ProjectStatus, check_project_transition

Clock = Callable[[], float]
Notify = Callable[[str, str], None]
# A project's new output: (project, number of the first line, lines, their times).
NotifyLines = Callable[[str, int, list[str], list[float]], None]


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """` — did you mean 'x'?` naming the closest known name, or "" when none is close."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" — did you mean {close[0]!r}?" if close else ""


@dataclass(frozen=True)
class ClusterSettings:
    node_timeout: float = 15.0
    max_moves_in_flight: int = 2
    lease_fraction: float = 0.6  # an exclusive project's lease, as a share of node-timeout
    balance: bool = True  # `manager serve --no-balance`: nothing moves only to even the load

    @property
    def lease(self) -> float:
        return self.node_timeout * self.lease_fraction

    @property
    def longest_hold(self) -> float:
        """The longest a node's /node-status long poll is held: half its lease. The node
        counts contact from when each poll left, so a hold near the lease (it was half the
        node-timeout, 5/6 of the lease) left a loaded node a few hundred ms before it stopped
        its exclusive projects with the manager up (seen with a 3 s node-timeout)."""
        return self.lease / 2

    @property
    def balance_after(self) -> float:
        """Seconds a node must have been alive before it receives balance moves."""
        return 2 * self.node_timeout


class Cluster(Undoable):
    """The manager's state: in memory for speed, mirrored in the store for durability."""

    group: GroupCommit  # always there (off until the manager starts it)

    def __init__(
        self,
        store: Storage,
        settings: ClusterSettings,
        clock: Clock = time.monotonic,
        notify: Notify | None = None,
        notify_lines: NotifyLines | None = None,
        wall_clock: Clock = time.time,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.notify: Notify = notify or (lambda kind, name: None)
        self.notify_lines: NotifyLines = notify_lines or (lambda project, first, lines, times: None)
        self.wall_clock = wall_clock  # the times of output lines
        self.state = ClusterState()
        self.group = GroupCommit(store, self._put_back)
        self.log = ProjectLog(self)
        self.polls = LongPoll()
        self.placement = Placement(self)
        self.monitor = Monitor(self, self.placement)
        self.reports = Reports(self, self.placement)
        self.members = Membership(self, self.placement, self.monitor)
        self.copies = Copies(self)
        self.actions = ProjectActions(self, self.placement, self.copies)
        self.started = clock()
        self.state.load(store, clock())

    @property
    def nodes(self) -> dict[str, NodeRecord]:
        """Every node record, by name."""
        return self.state.nodes

    @property
    def projects(self) -> dict[str, ProjectRecord]:
        """Every project record, by name."""
        return self.state.projects

    # writes -----------------------------------------------------------------------------------
    def _transaction(self, durable: bool) -> AbstractContextManager[None]:
        return self.store.transaction(durable)

    def _set_status(
        self, project: ProjectRecord, status: ProjectStatus, reason: str | None = None
    ) -> None:
        """The manager's own status changes go through the table in states.py."""
        self._keep(project)
        check_project_transition(project.name, project.status, status)
        project.status = status
        if reason is not None:
            project.reason = reason

    def _take_reported_status(self, project: ProjectRecord, status: ProjectStatus) -> None:
        """The status a node reported for its project, taken as it is.

        Not checked against the table: it is a fact the node's table produced, and reports
        coalesce, so the manager may see two moves as one.
        """
        self._keep(project)
        project.status = status

    def _set_node_status(self, node: NodeRecord, status: NodeStatus) -> None:
        """A node becomes alive (it spoke) or dead (silent, or it left)."""
        self._keep(node)
        node.status = status

    def _keep(self, record: NodeRecord | ProjectRecord) -> None:
        """Keep a record as it is, before the open write changes it."""
        assert self._undo is not None, "a record changed outside Cluster._write()"
        self._undo.keep(record)

    def _put_back(self, undo: Undo) -> None:
        """Undo a refused write: the kept records and entries, then the indexes derived."""
        projects = [r for r in undo.kept() if isinstance(r, ProjectRecord)]
        # Out of the indexes by the refused fields, back in by the restored ones.
        for project in projects:
            self.state.index(project, add=False)
        undo.restore()
        for project in projects:
            if self.projects.get(project.name) is project:
                self.state.index(project, add=True)
        nodes = [r for r in undo.kept() if isinstance(r, NodeRecord)]
        self.state.stale_views.update(r.name for r in nodes)
        # Their status may be back: the monitor's indexes follow (cluster_state.py).
        self.state.unschedulable.update(r.name for r in nodes)
        self.state.contact.restored(nodes, self.nodes)
        # Whatever the monitor meant to do is still to do.
        self.state.balance_needed = self.state.retry_needed = True
        self.state.copies_needed = True

    def _announce(self, kind: str, name: str) -> None:
        """Tell /events that a record changed, once its write is committed."""
        if kind == "project" and "@" in name:
            name = name.partition("@")[0]  # a copy shows in its parent's answer
        if self._undo is not None:
            self._undo.later(self._announce, kind, name)
        else:
            self.notify(kind, name)

    def _node_changed(self, name: str) -> None:
        """A node record changed: its placement view is stale, the monitor looks whether it
        was drained (or made lite), and /events hears of it."""
        self.state.stale_views.add(name)
        self.state.unschedulable.add(name)
        self._announce("node", name)

    def _changed(self, node_name: str | None) -> None:
        """A project's assignment changed: its node hears at once, and the monitor looks again."""
        self.state.retry_needed = True
        if node_name is None:
            return
        self.state.stale_views.add(node_name)
        self.wake(node_name)

    # nodes: membership.py ---------------------------------------------------------------------
    def initialize(self, request: InitializeRequest, address: str) -> tuple[str, str]:
        """Admit a node (the password was checked by the caller); return (name, token)."""
        # Its every-node copies come with it (there for its first poll); the same for the
        # node changes below, which make or delete copies (every_node.py).
        return self.copies.along(self.members.initialize, request, address)

    def authenticate_node(self, name: str, token: str) -> NodeRecord:
        """The node with this name and token, or Unauthorized."""
        return self.members.authenticate_node(name, token)

    def touch(self, node: NodeRecord, address: str = "") -> None:
        """Record contact from a node; a dead or departed node that speaks again is alive."""
        self.members.touch(node, address)

    def measured(self, node: NodeRecord, metrics: NodeMetrics) -> None:
        """A node's latest metrics, from its poll: kept in memory only (they change at every
        poll, and nothing else depends on them); /events hears of them."""
        node.metrics = metrics.model_dump()
        self._announce("node", node.name)

    def mark_lite(self, node: NodeRecord) -> None:
        """The node is a lite device (it spoke /hw_supervisor as one): it runs no projects."""
        self.members.mark_lite(node)

    def leave(self, node: NodeRecord) -> list[str]:
        """A node stopped cleanly: its projects move at once. Returns their names."""
        return self.members.leave(node)

    def drain(self, name: str) -> list[str]:
        """No new projects on this node, and its projects move elsewhere (stop first)."""
        moving = self.copies.along(self.members.drain, name)
        return [n for n in moving if n in self.projects]  # not its copies: they went away

    def undrain(self, name: str) -> None:
        self.copies.along(self.members.undrain, name)

    def forget(self, name: str) -> None:
        """Delete a dead node's record; its token stops working."""
        self.copies.along(self.members.forget, name)

    def label(self, name: str, labels: dict[str, str], remove: list[str]) -> dict[str, str]:
        """Set and remove a node's labels (its projects follow); returns its labels now."""
        return self.members.label(name, labels, remove)

    # long poll: longpoll.py -------------------------------------------------------------------
    def wake(self, node_name: str) -> None:
        """Answer this node's held long poll now: something else (a command) waits for it."""
        if self._undo is not None:
            # Not for a change that may yet be refused.
            self._undo.later(self.wake, node_name)
            return
        self.polls.wake(node_name)

    def held_polls(self) -> int:
        """How many long polls are being held now."""
        return self.polls.held()

    def wake_all(self) -> None:
        """Answer every held long poll now (the manager is shutting down)."""
        self.polls.wake_all()

    async def wait_for_change(self, node_name: str, timeout: float) -> None:
        """Return when this node's assignments change, or after `timeout` seconds.

        Returns at once when something changed since the last answer this node was sent, so
        a change between two polls is never missed.
        """
        await self.polls.wait_for_change(node_name, timeout)

    def assignments(self, node: NodeRecord) -> dict[str, Any]:
        """The /node-status answer for a node: its projects, keyed by name."""
        self.polls.sent(node.name)
        if node.agent_version is None:
            self.reports.seed_poll(node)
        return answers.node_status(
            self.state, node, self.settings.node_timeout, self.settings.lease
        )

    # node reports: reports.py -----------------------------------------------------------------
    def update(self, node: NodeRecord, report: ProjectReport) -> bool:
        """Apply a node's report on one project; refuse one the node should not be sending.

        True when it was written (a report that changes nothing stored is not). Either way
        the answer waits for `committed()`: what it was judged against may not be yet."""
        return self.reports.update(node, report)

    def joining(self) -> AbstractContextManager[list[asyncio.Future[None]]]:
        """Around a handler's reports: the batches their writes join (`committed()`)."""
        return self.group.watching()

    async def committed(self, joined: list[asyncio.Future[None]] | None = None) -> None:
        """Return once the batches `joined` are committed, and what memory shows now; raise
        StoreFailed if any was refused (group_commit.py)."""
        await self.group.settled(joined)

    # controller actions: project_actions.py ---------------------------------------------------
    def add(self, spec: AddProject) -> ProjectRecord:
        """A new project: placed now when it should start, or every-node copies made."""
        return self.actions.add(spec)

    def set(self, spec: SetProject, user: str) -> tuple[ProjectRecord, list[str]]:
        """Change a project in place (changes.py); returns it and the names of changed fields."""
        return self.actions.set(spec, user)

    def set_variables(self, names: list[str], values: dict[str, Any], user: str) -> list[str]:
        """Write persistent variables into the named projects (all when none are named)."""
        return self.actions.set_variables(names, values, user)

    def remove(self, spec: RemoveProject) -> None:
        """Delete a project, its log and its copies; its URL confirms the name."""
        self.actions.remove(spec)

    def start(self, names: Iterable[str], user: str = "") -> list[str]:
        return self.actions.start(names, user)

    def stop(self, names: Iterable[str], user: str = "") -> list[str]:
        return self.actions.stop(names, user)

    def restart(self, names: Iterable[str], user: str = "") -> list[str]:
        return self.actions.restart(names, user)

    def reset(self, names: Iterable[str], user: str = "") -> list[str]:
        return self.actions.reset(names, user)

    def rollout_retry(self, name: str) -> ProjectRecord:
        """`rollout --retry`: its node may try the bad commit it rolled back from again."""
        return self.actions.rollout_retry(name)

    # finding projects by name (the actions and the queries) -----------------------------------
    def _project(self, name: str) -> ProjectRecord:
        project = self.projects.get(name)
        if project is None:
            raise NotFound(f"no project named {name!r}{did_you_mean(name, self.projects)}")
        return project

    def select(self, names: Iterable[str]) -> list[ProjectRecord]:
        """The named projects (all when none are named); NotFound names the first unknown."""
        wanted = list(names)
        if not wanted:
            # Copies show in their parents' answers, and are acted on through them.
            return [p for n, p in sorted(self.projects.items()) if p.copy_of is None]
        return [self._project(name) for name in dict.fromkeys(wanted)]

    # the monitor: monitor.py ------------------------------------------------------------------
    def tick(self) -> None:
        """Liveness, overdue moves, retries of unplaced projects, and balance. Called often."""
        self.monitor.tick()

    # queries: the answers are built in answers.py ---------------------------------------------
    def project_info(self, project: ProjectRecord) -> dict[str, Any]:
        """The `status` answer for one project: the seed's fields and the added ones (and an
        every-node project's copies)."""
        info = answers.project_info(project)
        return self.copies.info(project, info) if is_parent(project) else info

    def node_info(self, node: NodeRecord) -> dict[str, Any]:
        """The `nodes` answer for one node."""
        return answers.node_info(self.state, node)

    def logs(self, name: str, count: int) -> dict[str, Any]:
        """The `logs` answer: a project's last `count` output lines kept here, oldest first.

        `seq` numbers the first of them in the project's log (it counts every line the manager
        took for the project), so a follower of /events can tell which lines it has seen.
        """
        project = self._project(name)
        self.copies.check_logs(project)
        return answers.logs(project, self.store.log_lines(project.name, count))

    def status(self, names: Iterable[str]) -> dict[str, Any]:
        return {p.name: self.project_info(p) for p in self.select(names)}

    def node_table(self) -> dict[str, Any]:
        return answers.node_table(self.state)

    def counts(self) -> dict[str, dict[str, int]]:
        """Nodes and projects counted by status, for /health and /metrics."""
        return answers.counts(self.state)

    def node_gauges(self) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        """Each live node's latest metrics as /metrics gauges, by node."""
        return answers.node_gauges(self.state)

"""A node's reports: applying what a node says of one of its projects, and taking its output.

A report is checked (the project exists, is this node's, same URL, current epoch), then applied
in one write: the reported status as the node's state machine produced it (not re-checked
against the manager's transition table: reports coalesce), the usage and variables, and new
output lines (project_log.py), stored with the record that holds the log's cursor. A report
that says a moving project has stopped completes its move (durably).

Reports are the manager's hot path (a fleet sends thousands a second), so a report joins the
group commit (group_commit.py) rather than committing alone, and one that changes nothing but
the time of the last report (`updated_at`, kept in memory) is not written at all: an idle
node's reports cost no write.
"""

from __future__ import annotations

import dataclasses
import operator
from typing import TYPE_CHECKING

from syncopate.errors import (
    NOT_THIS_NODES,
    URL_MISMATCH,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
)
from syncopate.manager import secret_box
from syncopate.manager.answers import seed_runs
from syncopate.manager.placement import Placement
from syncopate.manager.records import NodeRecord, ProjectRecord, utc_now
from syncopate.protocol import ProjectReport
from syncopate.states import (
    NOT_RUNNING_STATUSES,
    ProjectStatus,
    parse_reported_status,
)

if TYPE_CHECKING:
    from syncopate.manager.cluster import Cluster

# Statuses in which the project's process runs: its uptime counts from when it entered one.
RUNS = frozenset({ProjectStatus.RUNNING, ProjectStatus.ROLLED_BACK})

# A project's fields but the time of its last report: a report that changes none is not stored.
_WORTH_WRITING = operator.attrgetter(
    *(f.name for f in dataclasses.fields(ProjectRecord) if f.name != "updated_at")
)


class Reports:
    """Takes the nodes' reports into the records."""

    def __init__(self, cluster: Cluster, placement: Placement) -> None:
        self.cluster = cluster
        self.state = cluster.state
        self.placement = placement

    def update(self, node: NodeRecord, report: ProjectReport) -> bool:
        """Apply a node's report on one project; refuse one the node should not be sending.

        True when it was written (durably if it completed a move, else in the group commit)."""
        project = self.state.projects.get(report.project_name)
        if project is None:
            raise NotFound(
                f"no project named {report.project_name!r}; it was removed — stop it",
                code=NOT_THIS_NODES,
            )
        copy = self.cluster.copies.resolve(project, node.name)
        if copy is None:
            raise Forbidden(
                f"project {project.name!r} has no copy on node {node.name!r} (the node is "
                "drained or does not meet its constraints); stop it",
                code=NOT_THIS_NODES,
            )
        project = copy  # an every-node project's report is about this node's copy
        if project.node != node.name:
            where = f"it runs on {project.node}" if project.node else "it is not placed"
            raise Forbidden(
                f"project {project.name!r} is not assigned to node {node.name!r} ({where}); "
                "stop it",
                code=NOT_THIS_NODES,
            )
        if report.project_url != project.url:
            shown = secret_box.mask_any_url(report.project_url)  # the node's: not cached
            raise Conflict(
                f"project-url {shown!r} does not match {project.name!r}'s URL",
                code=URL_MISMATCH,
            )
        if report.epoch is not None and report.epoch != project.epoch:
            raise Conflict(
                f"stale epoch {report.epoch} for {project.name!r} (current {project.epoch}): "
                "it was moved or reset — stop this copy",
                code=NOT_THIS_NODES,
            )
        try:
            status = parse_reported_status(report.status)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None

        completing = project.moving_to is not None and status in NOT_RUNNING_STATUSES
        # The new lines and the record (which holds the log's cursor) commit together.
        with self.cluster._write(durable=completing, batched=not completing):
            self.cluster._keep(project)
            return self._apply_report(project, node, report, status, completing)

    def seed_poll(self, node: NodeRecord) -> None:
        """A seed-dialect node polls: what it stopped since its last answer is stopped.

        The seed's client stops a project only when it leaves its /node-status list, and says
        nothing then. It acts on an answer before it polls again, so a project left out of the
        previous answer and still left out now has no process: it is stopped, and a move
        waiting for that completes (DESIGN §10).
        """
        omitted = {
            name
            for name in self.state.placed_on(node.name)
            if not seed_runs(self.state.projects[name])
        }
        before = self.state.seed_omitted.get(node.name, set())
        self.state.seed_omitted[node.name] = omitted
        for name in sorted(omitted & before):
            project = self.state.projects[name]
            if project.status is ProjectStatus.STOPPED and project.moving_to is None:
                continue
            with self.cluster._write(durable=True):
                self.cluster._keep(project)
                self.cluster._take_reported_status(project, ProjectStatus.STOPPED)
                project.pid = None
                project.started_at = None
                project.updated_at = utc_now()
                self.state.stale_views.add(node.name)
                if project.moving_to is not None:
                    self.placement.complete_move(project)
                else:
                    self.cluster.store.save_project(project)
                self.cluster._announce("project", project.name)

    def _apply_report(
        self,
        project: ProjectRecord,
        node_record: NodeRecord,
        report: ProjectReport,
        status: ProjectStatus,
        completing: bool,
    ) -> bool:
        node = node_record.name
        now = utc_now()
        before = _WORTH_WRITING(project)
        usage = (project.ram_usage, project.disk_usage)
        was_running = project.status in RUNS
        self.cluster._take_reported_status(project, status)
        seed_node = node_record.agent_version is None
        project.disk_usage = report.disk_usage
        project.ram_usage = report.ram_usage
        if report.persistent_variables is not None and not (
            seed_node and not report.persistent_variables and project.variables
        ):
            # A seed node sends {} when the project's file is missing (not yet written, or
            # unreadable): that must not wipe the variables the manager keeps (DESIGN §10).
            project.variables = report.persistent_variables
        if report.commit is not None:
            project.commit = report.commit
        if "pid" in report.model_fields_set:
            project.pid = report.pid  # null: nothing runs
        if report.restarts is not None:
            project.restarts = report.restarts
        if report.exit_code is not None or "exit_code" in report.model_fields_set:
            project.exit_code = report.exit_code
        if report.log_tail is not None:
            project.log_tail = [
                secret_box.mask_in(line, project.url, project.secrets) for line in report.log_tail
            ]
        project.reason = secret_box.mask_in(report.reason or "", project.url, project.secrets)
        self._take_rollout(project, report)
        if status in RUNS and not was_running:
            project.started_at = now
        elif status not in RUNS:
            project.started_at = None
        project.updated_at = now

        if (project.ram_usage, project.disk_usage) != usage:
            self.state.stale_views.add(node)  # what it takes from its node changed
        if report.log_lines:
            self.cluster.log.take(project, node, report)
        self.cluster._announce("project", project.name)
        if completing:
            self.placement.complete_move(project)
        elif _WORTH_WRITING(project) != before:
            self.cluster.store.save_project(project)
        else:
            return False
        return True

    def _take_rollout(self, project: ProjectRecord, report: ProjectReport) -> None:
        """The rollout fields, when the node sent them (an older node or the seed's does not)."""
        sent = report.model_fields_set
        if "good_commit" in sent:
            project.good_commit = report.good_commit
        if "bad_commit" in sent:
            project.bad_commit = report.bad_commit
        if "bad_reason" in sent:
            reason = report.bad_reason
            if reason is not None:
                reason = secret_box.mask_in(reason, project.url, project.secrets)
            project.bad_reason = reason

"""A node's reports: applying what a node says of one of its projects, and taking its output.

A report is checked (the project exists, is this node's, same URL, current epoch), then applied
in one write: the reported status as the node's state machine produced it (not re-checked
against the manager's transition table: reports coalesce), the usage and variables, and new
output lines, which are stored with the record that holds the log's cursor. A report that
says a moving project has stopped completes its move (durably).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from syncopate.errors import Conflict, Forbidden, InvalidRequest, NotFound
from syncopate.manager import logbook
from syncopate.manager.placement import Placement
from syncopate.manager.records import NodeRecord, ProjectRecord, utc_now
from syncopate.protocol import LOG_LINES_KEPT, UpdateRequest
from syncopate.states import NOT_RUNNING_STATUSES, ProjectStatus, parse_reported_status

if TYPE_CHECKING:
    from syncopate.manager.cluster import Cluster


class Reports:
    """Takes the nodes' reports into the records."""

    def __init__(self, cluster: Cluster, placement: Placement) -> None:
        self.cluster = cluster
        self.state = cluster.state
        self.placement = placement

    def update(self, node: NodeRecord, report: UpdateRequest) -> str:
        """Apply a node's report on one project; refuse one the node should not be sending."""
        project = self.state.projects.get(report.project_name)
        if project is None:
            raise NotFound(f"no project named {report.project_name!r}; it was removed — stop it")
        if project.node != node.name:
            where = f"it runs on {project.node}" if project.node else "it is not placed"
            raise Forbidden(
                f"project {project.name!r} is not assigned to node {node.name!r} ({where}); stop it"
            )
        if report.project_url != project.url:
            raise Conflict(
                f"project-url {report.project_url!r} does not match {project.name!r}'s URL"
            )
        if report.epoch is not None and report.epoch != project.epoch:
            raise Conflict(
                f"stale epoch {report.epoch} for {project.name!r} (current {project.epoch}): "
                "it was moved or reset — stop this copy"
            )
        try:
            status = parse_reported_status(report.status)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None

        completing = project.moving_to is not None and status in NOT_RUNNING_STATUSES
        # The new lines and the record (which holds the log's cursor) commit together.
        with self.cluster._write(durable=completing):
            self.cluster._keep(project)
            self._apply_report(project, node.name, report, status, completing)
        return ""

    def _apply_report(
        self,
        project: ProjectRecord,
        node: str,
        report: UpdateRequest,
        status: ProjectStatus,
        completing: bool,
    ) -> None:
        now = utc_now()
        was_running = project.status is ProjectStatus.RUNNING
        self.cluster._take_reported_status(project, status)
        project.disk_usage = report.disk_usage
        project.ram_usage = report.ram_usage
        if report.persistent_variables is not None:
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
            project.log_tail = report.log_tail
        project.reason = report.reason or ""
        if status is ProjectStatus.RUNNING and not was_running:
            project.started_at = now
        elif status is not ProjectStatus.RUNNING:
            project.started_at = None
        project.updated_at = now

        self.state.stale_views.add(node)
        if report.log_lines:
            first, lines = self._take_lines(project, node, report)
            if lines:
                assert self.cluster._undo is not None
                self.cluster._undo.later(self.cluster.notify_lines, project.name, first, lines)
        if completing:
            self.placement.complete_move(project)
        else:
            self.cluster.store.save_project(project)
        self.cluster._announce("project", project.name)

    def _take_lines(
        self, project: ProjectRecord, node: str, report: UpdateRequest
    ) -> tuple[int, list[str]]:
        """Store the report's new output lines; the caller saves the project record.

        Returns the number of the first line stored and the lines.
        """
        assert report.log_stream is not None and report.log_seq is not None  # validated
        cursor = logbook.LogCursor(project.log_stream, project.log_next, project.log_node)
        cursor, lines = logbook.accept(
            cursor, node, report.log_stream, report.log_seq, report.log_lines or []
        )
        project.log_stream, project.log_next, project.log_node = (
            cursor.stream,
            cursor.next,
            cursor.node,
        )
        if not lines:
            return 0, []
        first = project.log_count
        project.log_count += len(lines)
        if len(lines) > LOG_LINES_KEPT:
            lines = lines[-LOG_LINES_KEPT:]
            first = project.log_count - LOG_LINES_KEPT
        self.cluster.store.append_log_lines(project.name, first, lines, LOG_LINES_KEPT)
        return first, lines

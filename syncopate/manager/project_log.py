"""A project's kept output on the manager: its nodes' lines and the manager's own notes.

Every line is stored with its number and a time (logbook.py decides which), inside the open
`Cluster._write`, and /events hears of it once the write is committed. The notes say what
happened to the project in its own log, beside its output: `stopped by alice`, `moved to pi-3:
node pi-1 died ...` (the callers choose the words; `note` stores them). The caller saves the
project record, which holds the log's count and cursor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from syncopate.manager import logbook, secret_box
from syncopate.manager.records import ProjectRecord
from syncopate.protocol import LOG_LINES_KEPT, ProjectReport

if TYPE_CHECKING:
    from syncopate.manager.cluster import Cluster


class ProjectLog:
    """Appends lines to projects' kept output, with their times."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def take(self, project: ProjectRecord, node: str, report: ProjectReport) -> None:
        """Store a report's new output lines (those not taken already), with their times."""
        assert report.log_stream is not None and report.log_seq is not None  # validated
        cursor = logbook.LogCursor(project.log_stream, project.log_next, project.log_node)
        # A git error quoting a password-bearing URL must not keep the password, nor a line a
        # program printed its secret in (viewers read the output too).
        reported = [
            secret_box.mask_in(line, project.url, project.secrets)
            for line in report.log_lines or []
        ]
        cursor, lines, times = logbook.accept_timed(
            cursor,
            node,
            report.log_stream,
            report.log_seq,
            reported,
            report.log_times,
            self.cluster.wall_clock(),
        )
        project.log_stream, project.log_next, project.log_node = (
            cursor.stream,
            cursor.next,
            cursor.node,
        )
        self._append(project, lines, times)

    def note(self, project: ProjectRecord, message: str) -> None:
        """Add a line of the manager's own (`[syncopate] message`) to the project's output."""
        if project.copy_of is None and project.every_node:
            return  # a parent has no output of its own: its copies' logs have the note
        self.cluster._keep(project)
        self._append(project, [logbook.note(message)], [self.cluster.wall_clock()])

    def _append(self, project: ProjectRecord, lines: list[str], times: list[float]) -> None:
        if not lines:
            return
        first = project.log_count
        project.log_count += len(lines)
        if len(lines) > LOG_LINES_KEPT:
            lines, times = lines[-LOG_LINES_KEPT:], times[-LOG_LINES_KEPT:]
            first = project.log_count - LOG_LINES_KEPT
        self.cluster.store.append_log_lines(project.name, first, lines, LOG_LINES_KEPT, times)
        assert self.cluster._undo is not None  # inside the caller's write
        self.cluster._undo.later(self.cluster.notify_lines, project.name, first, lines, times)

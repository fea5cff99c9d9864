"""What this node knows of one assigned project (`Local`), and the small records beside it.

A `Local` is one copy of a project: one epoch of it. A reset or a move gives the project a new
epoch and the node a new `Local`, while steps of the old one may still be under way; the
runner (`runner.py`) acts on whichever `Local` a step was for. `StartedEpochs` remembers, across
agent restarts, under which epoch each project last started, so an older epoch's variables file
is never taken for the current one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syncopate.node.logs import LogSink
from syncopate.node.supervisor import ProjectProcess
from syncopate.paths import write_private_json
from syncopate.states import ProjectStatus

# Statuses in which a project's process exists (or is about to be restarted).
ACTIVE = frozenset(
    {
        ProjectStatus.STARTING,
        ProjectStatus.RUNNING,
        ProjectStatus.UNHEALTHY,
        ProjectStatus.ROLLED_BACK,
        ProjectStatus.CRASHED,
    }
)


@dataclass
class Local:
    """What this node knows and runs of one assigned project."""

    name: str
    url: str
    epoch: int
    ref: str | None = None
    command: str | None = None
    desired: str = "running"
    exclusive: bool = False
    restart: int = 0
    manager_variables: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)  # the project's own environment variables
    # DESIGN section 12, as the manager sent them: the health check given with add or set
    # (cmd, http, interval, timeout, retries; None: none), the grace a new commit has, the
    # memory limit in MB (0: none), and the `rollout --retry` counter.
    health: dict[str, Any] | None = None
    grace: float = 60.0
    max_ram: float = 0.0
    rollout_retry: int = 0
    # (url, ref, command, env) its process was started with: a restart after `set` changed
    # them follows the new URL and ref and starts a new process.
    started_with: tuple[str, str | None, str | None, dict[str, str]] | None = None

    @property
    def wanted(self) -> tuple[str, str | None, str | None, dict[str, str]]:
        """What its process should be started with now."""
        return (self.url, self.ref, self.command, self.env)

    # Every change goes through ProjectRunner.set_status (the table in states.py); while a
    # process exists, its status is mirrored here.
    status: ProjectStatus = ProjectStatus.PENDING
    reason: str = ""
    commit: str | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    variables_error: str = ""
    process: ProjectProcess | None = None
    sink: LogSink | None = None
    log_next: int = 0  # the sink's first line the manager has not acknowledged
    retry_at: float = 0.0  # when a failed project is tried again
    step_failures: int = 0  # steps that raised in a row, for the retry backoff
    disk_mb: float = 0.0
    disk_at: float = -1e9
    lease_stopped: bool = False

    @property
    def active(self) -> bool:
        """True while its process runs or is about to be restarted."""
        return self.process is not None and self.process.status in ACTIVE

    def forgive(self) -> None:
        """Start, restart or a new commit: a failed project is tried again at once."""
        self.retry_at = 0.0
        self.step_failures = 0

    def acknowledged(self, report: dict[str, Any]) -> None:
        """The manager took `report`: its log lines need not be sent again."""
        if self.sink is not None and report.get("log-stream") == self.sink.stream:
            sent_up_to = int(report["log-seq"]) + len(report["log-lines"])
            self.log_next = max(self.log_next, sent_up_to)


class StartedEpochs:
    """The epoch each project last started under (its variables written then), in a file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._epochs = self._load()

    def get(self, project: str) -> int | None:
        return self._epochs.get(project)

    def set(self, project: str, epoch: int) -> None:
        self._epochs[project] = epoch
        self._save()

    def forget(self, project: str) -> None:
        self._epochs.pop(project, None)
        self._save()

    def _load(self) -> dict[str, int]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return {str(k): int(v) for k, v in data.items()}
        except (OSError, ValueError, AttributeError):
            return {}

    def _save(self) -> None:
        write_private_json(self.path, dict(self._epochs))


def assigned_environment(wanted: dict[str, Any]) -> dict[str, str]:
    """A project's `environment-variables`; the manager checked them, the agent keeps strings."""
    env = wanted.get("environment-variables")
    if not isinstance(env, dict):
        return {}
    return {str(k): str(v) for k, v in env.items() if not str(k).upper().startswith("SYNCOPATE_")}


def assigned_number(value: Any, default: float) -> float:
    """A number the manager sent, or `default` when it sent none (an older manager)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return float(value)

"""The agent's settings, and where under its data dir it keeps what.

settings = AgentSettings(manager="http://pi-0:8470", data_dir=Path("~/node").expanduser())
settings.checkout("blink")   # ~/node/projects/blink
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from syncopate.node.backoff import BackoffPolicy


@dataclass(frozen=True)
class AgentSettings:
    manager: str
    data_dir: Path
    password: str | None = None
    name: str = ""
    interval: float = 5.0  # seconds between full reports
    sync_interval: float = 60.0  # seconds between git fetches
    poll_wait: float = 20.0  # long-poll hold asked of the manager
    grace: float = 5.0  # SIGTERM to SIGKILL
    ca_file: str | None = None
    fingerprint: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)

    @property
    def projects_dir(self) -> Path:
        """The checkouts, one directory per project."""
        return self.data_dir / "projects"

    @property
    def logs_dir(self) -> Path:
        """Each project's output, `<name>.log` (rotated by `logs.LogSink`)."""
        return self.data_dir / "logs"

    @property
    def records_dir(self) -> Path:
        """The records of the processes running now, for the next agent after a crash."""
        return self.data_dir / "running"

    @property
    def commands_dir(self) -> Path:
        """The scratch directories of command-channel programs, one per command."""
        return self.data_dir / "commands"

    @property
    def epochs_file(self) -> Path:
        """The epoch each project was last started under (`project.StartedEpochs`)."""
        return self.data_dir / "epochs.json"

    def checkout(self, project: str) -> Path:
        """Where project `project` is checked out."""
        return self.projects_dir / project

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

    # Where under data_dir the agent keeps what, derived from it.
    projects_dir: Path = field(init=False)  # the checkouts, one directory per project
    logs_dir: Path = field(init=False)  # each project's output, `<name>.log` (logs.LogSink)
    records_dir: Path = field(init=False)  # what runs now, for the next agent after a crash
    commands_dir: Path = field(init=False)  # command-channel programs' scratch, one per command
    epochs_file: Path = field(init=False)  # the epoch each project last started under
    rollouts_dir: Path = field(init=False)  # each project's last good and bad commit (rollout.py)

    def __post_init__(self) -> None:
        layout = {
            "projects_dir": "projects",
            "logs_dir": "logs",
            "records_dir": "running",
            "commands_dir": "commands",
            "epochs_file": "epochs.json",
            "rollouts_dir": "rollouts",
        }
        for attribute, name in layout.items():
            object.__setattr__(self, attribute, self.data_dir / name)  # frozen: set once here

    def checkout(self, project: str) -> Path:
        """Where project `project` is checked out."""
        return self.projects_dir / project

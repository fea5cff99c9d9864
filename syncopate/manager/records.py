"""The manager's records of nodes, projects and commands (in memory, mirrored in SQLite).

Node and project times for people (joined, updated, started...) are ISO 8601 UTC stamps to the
second, from `utc_now`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from syncopate.states import CommandState, Desired, NodeStatus, ProjectStatus


class _UtcStamp:
    """The current time as ISO 8601 UTC, to the second; formatted once a second (hot path)."""

    def __init__(self) -> None:
        self.second = -1
        self.text = ""

    def __call__(self) -> str:
        second = int(time.time())
        if second != self.second:
            self.second = second
            self.text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return self.text


utc_now = _UtcStamp()


@dataclass(slots=True)
class NodeRecord:
    name: str
    token_hash: str
    storage: float
    ram: float
    labels: dict[str, str] = field(default_factory=dict)
    agent_version: str | None = None
    joined_at: str = ""
    last_contact_wall: str = ""  # ISO time, for people
    status: NodeStatus = NodeStatus.ALIVE
    drained: bool = False  # the controller asked for no projects here
    left: bool = False  # the agent said it stopped cleanly
    kind: str = "agent"  # or "lite": a device on /hw_supervisor, never given projects
    # Monotonic time of the last request; not stored (a restarted manager grants a fresh timeout).
    last_contact: float = 0.0
    # Monotonic time it joined or came back from dead (a restarted manager: its start); not
    # stored. Balance moves nothing onto a node until it has been alive for a while.
    alive_since: float = 0.0
    address: str = ""
    # The latest `metrics` of its polls (cpu, load, temperature, uptime); not stored: they
    # change at every poll, and a restarted manager hears them again at the next one.
    metrics: dict[str, float | None] | None = None

    @property
    def schedulable(self) -> bool:
        return (
            self.status is NodeStatus.ALIVE
            and not self.drained
            and not self.left
            and self.kind == "agent"
        )


@dataclass(slots=True)
class ProjectRecord:
    name: str
    url: str
    initial_variables: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)
    command: str | None = None
    ref: str | None = None
    ram: float = 0.0  # MB asked for at add
    disk: float = 0.0
    exclusive: bool = False
    env: dict[str, str] = field(default_factory=dict)  # the process's environment variables
    # Like env, but write-only: answers show the names only, the store keeps them sealed.
    secrets: dict[str, str] = field(default_factory=dict)
    # Placement you can steer and roll-out safety (DESIGN section 12).
    constraints: list[str] = field(default_factory=list)  # `--on`: K=V, K!=V or K
    every_node: bool = False  # one copy on every live node that meets the constraints
    stay: bool = False  # never moved for balance
    health_cmd: str | None = None
    health_http: str | None = None
    health_interval: float = 10.0  # seconds between checks
    health_timeout: float = 5.0  # seconds one check may take
    health_retries: int = 3  # failures in a row before it is unhealthy
    grace: float = 60.0  # seconds a new commit has to prove itself before it counts as good
    max_ram: float = 0.0  # MB its process tree may use (0: no limit)
    rollout_retry: int = 0  # bumped by `rollout --retry`: the node may try a bad commit again
    # An every-node project's copy on one node (every_node.py): the parent's name. The copy's
    # record is named `PARENT@NODE`, a name no project can have, and never leaves its node.
    copy_of: str | None = None
    # As its node reports them: the last good commit, the bad one rolled back from, and why.
    good_commit: str | None = None
    bad_commit: str | None = None
    bad_reason: str | None = None
    desired: Desired = Desired.RUNNING
    node: str | None = None
    moving_to: str | None = None  # a move in progress: stop on `node`, then start here
    epoch: int = 0
    restart: int = 0
    status: ProjectStatus = ProjectStatus.PENDING
    reason: str = ""
    commit: str | None = None
    pid: int | None = None
    restarts: int = 0
    exit_code: int | None = None
    started_at: str | None = None
    updated_at: str | None = None
    created_at: str = ""
    disk_usage: float = 0.0
    ram_usage: float = 0.0
    log_tail: list[str] = field(default_factory=list)
    # The output kept in the store: the stream lines were last taken from, the next line
    # number expected in it and its node (see logbook.accept), and how many lines the project's
    # log has had (the next stored line's number).
    log_stream: str = ""
    log_next: int = 0
    log_node: str = ""
    log_count: int = 0
    # Changes made with `set`, oldest first (ProjectChange.as_dict), bounded by HISTORY_KEPT.
    history: list[dict[str, Any]] = field(default_factory=list)
    # Monotonic time the current move began (not stored).
    move_started: float = 0.0


@dataclass(slots=True)
class CommandStep:
    """One step of a command's life: the state it entered, when (ISO 8601 UTC), and who."""

    state: str
    at: str
    by: str


@dataclass(slots=True)
class CommandRecord:
    """A program sent to one node or lite device, and what became of it (DESIGN section 7)."""

    id: int
    user: str  # who sent it: the name behind the controller token
    node: str
    code: str
    interpreter: str = "python"
    timeout: float = 30.0  # seconds the program may run
    pickup: float = 60.0  # seconds it may wait to be collected
    lite: bool = False  # for a lite device: collected through /hw_supervisor
    state: CommandState = CommandState.REQUESTED
    response: str | None = None
    exit_code: int | None = None
    duration: float | None = None
    analysis: str | None = None
    reason: str | None = None  # why it timed out or was canceled
    created: str = ""
    collected: str | None = None
    responded: str | None = None
    analyzed: str | None = None
    ended: str | None = None
    history: list[CommandStep] = field(default_factory=list)
    # Monotonic time of the last step, for the pickup and run deadlines (not stored: a restarted
    # manager gives open commands their full time again).
    since: float = 0.0

"""Project, node and command states, and the transitions between them.

Stdlib only: the manager, the node agent, the CLI and the TUI all read these tables, and the
boundary test imports this module in a fresh interpreter to prove it pulls in nothing else.
"""

from __future__ import annotations

from enum import StrEnum


class ProjectStatus(StrEnum):
    """What a project is doing, as the manager reports it."""

    # Manager side: the project has no node running it yet.
    PENDING = "pending"  # placed (or about to be); the node has not reported yet
    UNSCHEDULABLE = "unschedulable"  # no live node fits it; `reason` says why
    LOST = "lost"  # its node died and no other node could take it
    # Reported by the node.
    CLONING = "cloning"
    STARTING = "starting"
    RUNNING = "running"
    UNHEALTHY = "unhealthy"  # runs, but fails its health check; a restart follows
    ROLLED_BACK = "rolled-back"  # a new commit failed; the last good commit runs again
    CRASHED = "crashed"  # exited; a restart is pending
    FAILED = "failed"  # cannot run: clone failed, no run command, a step failed, crash loop
    STOPPED = "stopped"


MANAGER_STATUSES = frozenset(
    {ProjectStatus.PENDING, ProjectStatus.UNSCHEDULABLE, ProjectStatus.LOST}
)
NODE_STATUSES = frozenset(set(ProjectStatus) - MANAGER_STATUSES)
# Statuses in which a project has no process on its node: a move may proceed at once.
NOT_RUNNING_STATUSES = frozenset(
    {ProjectStatus.STOPPED, ProjectStatus.FAILED, ProjectStatus.PENDING, ProjectStatus.CLONING}
)

_P = ProjectStatus
# Every status change of a project goes through this table: the node agent's (its supervisor's
# and its steps') and the manager's own decisions. A node's report is a fact, not a move: reports
# are coalesced (a crash and its restart may reach the manager as one "running"), so the manager
# stores what a node reports and checks here only the changes it makes itself.
_MOVES: dict[ProjectStatus, frozenset[ProjectStatus]] = {
    # Manager side. Placed on a node: pending until the node says what it does.
    _P.PENDING: frozenset(
        {_P.CLONING, _P.STARTING, _P.STOPPED, _P.FAILED, _P.UNSCHEDULABLE, _P.LOST}
    ),
    # No live node fits (or its node died and none other fits): placed when one does; stop
    # while unplaced makes it stopped.
    _P.UNSCHEDULABLE: frozenset({_P.PENDING, _P.LOST, _P.STOPPED}),
    _P.LOST: frozenset({_P.PENDING, _P.UNSCHEDULABLE, _P.STOPPED}),
    # Node side: one copy's life.
    _P.CLONING: frozenset({_P.STARTING, _P.STOPPED, _P.FAILED}),
    # starting -> running: spawned; -> crashed: a restart could not spawn; -> stopped: stop()
    # or a first spawn that failed; -> failed: the agent gave up on it
    _P.STARTING: frozenset({_P.RUNNING, _P.CRASHED, _P.STOPPED, _P.FAILED, _P.ROLLED_BACK}),
    # running -> crashed: it exited on its own; -> stopped: stop(); -> failed: a step failed;
    # -> unhealthy: its health check failed `retries` times in a row; -> rolled-back: a new
    # commit failed within its grace and the last good one runs again
    _P.RUNNING: frozenset({_P.CRASHED, _P.STOPPED, _P.FAILED, _P.UNHEALTHY, _P.ROLLED_BACK}),
    # unhealthy -> running: the check passes again; -> starting: the restart it brings;
    # -> rolled-back: it was a new commit within its grace
    _P.UNHEALTHY: frozenset(
        {_P.RUNNING, _P.STARTING, _P.CRASHED, _P.STOPPED, _P.FAILED, _P.ROLLED_BACK}
    ),
    # rolled-back: runs the last good commit (as running does); -> running: a newer commit
    # (or `rollout --retry`) runs well
    _P.ROLLED_BACK: frozenset(
        {_P.RUNNING, _P.STARTING, _P.CRASHED, _P.STOPPED, _P.FAILED, _P.UNHEALTHY}
    ),
    # crashed -> starting: the backoff is over; -> stopped: stop() during the backoff;
    # -> failed: a crash loop (too many quick exits in a row)
    _P.CRASHED: frozenset({_P.STARTING, _P.STOPPED, _P.FAILED, _P.ROLLED_BACK}),
    # failed -> cloning/starting: start, restart, a new commit, or the retry after backoff
    _P.FAILED: frozenset({_P.CLONING, _P.STARTING, _P.STOPPED}),
    _P.STOPPED: frozenset({_P.CLONING, _P.STARTING, _P.FAILED}),
}
# The manager may override whatever a project was doing when it places, loses or cannot place
# it: those decisions are about where it runs, not about its process.
PROJECT_TRANSITIONS: dict[ProjectStatus, frozenset[ProjectStatus]] = {
    status: moves if status in MANAGER_STATUSES else moves | MANAGER_STATUSES
    for status, moves in _MOVES.items()
}


def project_transition_allowed(current: ProjectStatus, target: ProjectStatus) -> bool:
    """True when a project in `current` may move to `target` (staying put is always allowed)."""
    return current == target or target in PROJECT_TRANSITIONS[current]


class TransitionRefused(RuntimeError):
    """A status change the table does not allow: a bug in the code that asked for it."""


def check_project_transition(name: str, current: ProjectStatus, target: ProjectStatus) -> None:
    """Raise TransitionRefused when project `name` may not go from `current` to `target`."""
    if not project_transition_allowed(current, target):
        raise TransitionRefused(f"project {name}: no transition {current} -> {target}")


# The seed's statuses: its README's "good"/"bad", and what its node client actually reports
# (DESIGN §10): alive (the process runs), dead (it exited), unborn (not started yet).
SEED_STATUS_ALIASES = {
    "good": ProjectStatus.RUNNING,
    "bad": ProjectStatus.FAILED,
    "alive": ProjectStatus.RUNNING,
    "dead": ProjectStatus.CRASHED,
    "unborn": ProjectStatus.STARTING,
}


def parse_reported_status(value: str) -> ProjectStatus:
    """Turn a status a node reported into a ProjectStatus; raise ValueError when it is none."""
    lowered = value.strip().lower()
    if lowered in SEED_STATUS_ALIASES:
        return SEED_STATUS_ALIASES[lowered]
    try:
        status = ProjectStatus(lowered)
    except ValueError:
        allowed = ", ".join(sorted([*NODE_STATUSES, *SEED_STATUS_ALIASES]))
        raise ValueError(f"unknown status {value!r}; a node reports one of: {allowed}") from None
    if status in MANAGER_STATUSES:
        raise ValueError(f"status {value!r} is the manager's to set, not a node's")
    return status


class Desired(StrEnum):
    """What the controller wants of a project."""

    RUNNING = "running"
    STOPPED = "stopped"


class NodeStatus(StrEnum):
    """A node's liveness, as the `nodes` answer shows it."""

    ALIVE = "alive"
    DEAD = "dead"


class CommandState(StrEnum):
    """The command channel's states (hardware_synchronizer)."""

    REQUESTED = "requested"
    COLLECTED = "collected"
    RESPONDED = "responded"
    ANALYZED = "analyzed"
    TIMED_OUT = "timed-out"
    CANCELED = "canceled"


COMMAND_TRANSITIONS: dict[CommandState, frozenset[CommandState]] = {
    # requested -> collected: a node (or lite device) picked it up
    # requested -> timed-out: nobody collected it before its pickup deadline
    # requested -> canceled: the user took it back before it was collected
    CommandState.REQUESTED: frozenset(
        {CommandState.COLLECTED, CommandState.TIMED_OUT, CommandState.CANCELED}
    ),
    # collected -> responded: the node sent the response
    # collected -> timed-out: no response within the run timeout plus a margin
    CommandState.COLLECTED: frozenset({CommandState.RESPONDED, CommandState.TIMED_OUT}),
    # responded -> analyzed: someone attached an analysis
    CommandState.RESPONDED: frozenset({CommandState.ANALYZED}),
    CommandState.ANALYZED: frozenset(),
    CommandState.TIMED_OUT: frozenset(),
    CommandState.CANCELED: frozenset(),
}
COMMAND_FINAL_STATES = frozenset(s for s, nxt in COMMAND_TRANSITIONS.items() if not nxt)


def command_transition_allowed(current: CommandState, target: CommandState) -> bool:
    """True when a command in `current` may move to `target`."""
    return target in COMMAND_TRANSITIONS[current]

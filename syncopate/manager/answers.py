"""The cluster's answers to questions: plain dicts built from the records, changing nothing.

/node-status (a node's assignments), `status` (projects), `nodes`, `logs`, and the counts and
per-node gauges for /health and /metrics. The field names are the wire format (DESIGN.md); the
seed's per-project fields are shared by /node-status and `status`.
"""

from __future__ import annotations

from typing import Any

from syncopate.errors import OK
from syncopate.manager import logbook, secret_box
from syncopate.manager.cluster_state import ClusterState
from syncopate.manager.records import NodeRecord, ProjectRecord
from syncopate.states import Desired, NodeStatus, ProjectStatus


def seed_fields(project: ProjectRecord) -> dict[str, Any]:
    """The seed's per-project fields, shared by /node-status and the `status` answer."""
    return {
        # A copy of an every-node project is known to its node by the project's name.
        "project-name": project.copy_of or project.name,
        "project-url": secret_box.mask_url(project.url),
        "status": project.status.value,
        "disk-usage": project.disk_usage,
        "ram-usage": project.ram_usage,
        "persistent-variables": project.variables,
    }


def seed_runs(project: ProjectRecord) -> bool:
    """Whether a seed-dialect node should run this project (list it in /node-status)."""
    return project.desired is Desired.RUNNING and project.moving_to is None


def node_status(
    state: ClusterState, node: NodeRecord, node_timeout: float, lease: float
) -> dict[str, Any]:
    """The /node-status answer for a node: its projects, keyed by name."""
    projects = {}
    seed_node = node.agent_version is None
    for project_name in state.placed_on(node.name):
        project = state.projects[project_name]
        if seed_node and not seed_runs(project):
            # A seed node stops a project only when it leaves this list (DESIGN §10).
            continue
        projects[project.copy_of or project_name] = assignment(project)
    return {
        "code": OK,
        "name": node.name,
        "projects": projects,
        "node-timeout": node_timeout,
        "lease": lease,
    }


def assignment(project: ProjectRecord) -> dict[str, Any]:
    """One project as its node is told it: what to run, and whether to run it."""
    desired = Desired.STOPPED if project.moving_to is not None else project.desired
    return {
        **seed_fields(project),
        # Its own node is told the URL as it is: it has to fetch it (a password is a secret).
        "project-url": project.url,
        "desired": desired.value,
        "command": project.command,
        "ref": project.ref,
        "epoch": project.epoch,
        "restart": project.restart,
        "exclusive": project.exclusive,
        "environment-variables": environment(project),
        "health": health(project),
        "grace": project.grace,
        "max-ram": project.max_ram,
        "rollout-retry": project.rollout_retry,
    }


def health(project: ProjectRecord) -> dict[str, Any] | None:
    """The project's health check as given with add or set (None: none given; the node may
    still find one in the repository's syncopate.toml)."""
    if not project.health_cmd and not project.health_http:
        return None
    return {
        "cmd": project.health_cmd,
        "http": project.health_http,
        "interval": project.health_interval,
        "timeout": project.health_timeout,
        "retries": project.health_retries,
    }


def environment(project: ProjectRecord) -> dict[str, str]:
    """The project's `environment-variables` as its node is told them (DESIGN §10, §11).

    Our agent puts them on top of its base environment; the seed's node client uses them as
    the project's whole environment. Secrets are merged in (over env of the same name): this
    is the one answer that carries their values, and only to the project's own node.
    """
    return {**project.env, **project.secrets}


def project_info(project: ProjectRecord) -> dict[str, Any]:
    """The `status` answer for one project: the seed's fields and the added ones."""
    return {
        **seed_fields(project),
        "initial_variables": project.initial_variables,
        "node": project.node,
        "moving-to": project.moving_to,
        "desired": project.desired.value,
        "epoch": project.epoch,
        "restart": project.restart,
        "commit": project.commit,
        "pid": project.pid,
        "restarts": project.restarts,
        "exit-code": project.exit_code,
        "started-at": project.started_at,
        "updated-at": project.updated_at,
        "created-at": project.created_at,
        "reason": project.reason or None,
        "command": project.command,
        "ref": project.ref,
        "ram": project.ram,
        "disk": project.disk,
        "exclusive": project.exclusive,
        "on": list(project.constraints),
        "every-node": project.every_node,
        "stay": project.stay,
        "health": health(project),
        "grace": project.grace,
        "max-ram": project.max_ram,
        "good-commit": project.good_commit,
        "bad-commit": project.bad_commit,
        "bad-reason": project.bad_reason,
        "rollout-retry": project.rollout_retry,
        "env": dict(project.env),
        "secrets": secret_box.masked(project.secrets),
        "history": list(project.history),
        "log-tail": project.log_tail,
    }


def node_info(state: ClusterState, node: NodeRecord) -> dict[str, Any]:
    """The `nodes` answer for one node."""
    names = state.placed_on(node.name)
    placed = [state.projects[n] for n in names]
    return {
        "name": node.name,
        "status": node.status.value,
        "drained": node.drained,
        "left": node.left,
        "last-contact": node.last_contact_wall,
        "joined-at": node.joined_at,
        "storage": node.storage,
        "ram": node.ram,
        "labels": node.labels,
        "agent-version": node.agent_version,
        "kind": node.kind,
        "address": node.address,
        "disk-usage": sum(p.disk_usage for p in placed),
        "ram-usage": sum(p.ram_usage for p in placed),
        "projects": sorted(p.copy_of or p.name for p in placed),
        # As of its last poll (`last-contact`); None: it sends none (a seed node, a lite device).
        "metrics": node.metrics,
    }


def node_table(state: ClusterState) -> dict[str, Any]:
    """The `nodes` answer: every node, by name."""
    return {name: node_info(state, state.nodes[name]) for name in sorted(state.nodes)}


def logs(project: ProjectRecord, rows: list[tuple[int, str, float | None]]) -> dict[str, Any]:
    """The `logs` answer from a project's last output lines as the store gives them, numbered.

    `seq` numbers the first of them in the project's log (it counts every line the manager
    took for the project), so a follower of /events can tell which lines it has seen. `times`
    says when each line was produced (ISO 8601 UTC; null for a line kept before times were).
    """
    return {
        "project": project.name,
        "node": project.node,
        "seq": rows[0][0] if rows else project.log_count,
        "lines": [line for _, line, _ in rows],
        "times": [logbook.iso(time) for _, _, time in rows],
    }


# /metrics gauges from a node's metrics: (gauge, metrics key).
NODE_GAUGES = (
    ("syncopate_node_cpu_percent", "cpu"),
    ("syncopate_node_load1", "load"),
    ("syncopate_node_temperature_celsius", "temperature"),
    ("syncopate_node_uptime_seconds", "uptime"),
)


def node_gauges(state: ClusterState) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Each node's latest metrics as gauges labelled by node; a figure it does not know (no
    sensor) has no series. A dead or departed node has none: its last figures are stale."""
    gauges: dict[str, dict[tuple[tuple[str, str], ...], float]] = {g: {} for g, _ in NODE_GAUGES}
    for node in state.nodes.values():
        if node.metrics is None or node.status is not NodeStatus.ALIVE or node.left:
            continue
        for gauge, key in NODE_GAUGES:
            value = node.metrics.get(key)
            if value is not None:
                gauges[gauge][(("node", node.name),)] = float(value)
    return gauges


def counts(state: ClusterState) -> dict[str, dict[str, int]]:
    """Nodes and projects counted by status, for /health and /metrics."""
    nodes: dict[str, int] = {s.value: 0 for s in NodeStatus}
    for node in state.nodes.values():
        nodes[node.status.value] += 1
    projects: dict[str, int] = {s.value: 0 for s in ProjectStatus}
    for project in state.projects.values():
        if not project.every_node or project.copy_of:  # a parent runs nothing: its copies do
            projects[project.status.value] += 1
    return {"nodes": nodes, "projects": projects}

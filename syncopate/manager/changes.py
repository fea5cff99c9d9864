"""`set`: changing a project in place (DESIGN section 11), the cluster's part.

Its variables, output and history stay. A change the running process must see (url, ref,
command, env, secrets) asks its node for one restart (the `restart` counter); a change of what
it asks for (ram, disk) moves it only when it no longer fits where it is. Every change is one
`Cluster._write`, and is recorded in the project's `history` (who, when, which fields) and
noted in its log (project_log.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from syncopate import validate, variables
from syncopate.errors import InvalidRequest, TooLarge
from syncopate.manager import scheduler
from syncopate.manager.records import ProjectRecord, utc_now
from syncopate.project_protocol import SetProject
from syncopate.states import Desired, ProjectStatus

if TYPE_CHECKING:
    from syncopate.manager.cluster import Cluster

# Fields whose change the project's process must see: it restarts once.
RESTART_FIELDS = frozenset({"url", "ref", "command", "env", "secrets"})
HISTORY_KEPT = 100  # changes kept per project, oldest dropped first
# Fields `set` copies as they are when given (None: unchanged). The node takes the health,
# grace and memory settings without a restart.
SECTION_12_FIELDS = (
    "ram",
    "disk",
    "exclusive",
    "stay",
    "health_interval",
    "health_timeout",
    "health_retries",
    "grace",
    "max_ram",
)


def wanted(project: ProjectRecord, spec: SetProject) -> dict[str, Any]:
    """The fields `spec` changes, with their new values (none when it changes nothing)."""
    new: dict[str, Any] = {}
    if spec.url is not None and spec.url != project.url:
        new["url"] = spec.url
    for name in ("command", "ref"):
        value = getattr(spec, name)
        if value is not None and (value or None) != getattr(project, name):
            new[name] = value or None  # empty: back to the default
    for name in SECTION_12_FIELDS:
        value = getattr(spec, name)
        if value is not None and value != getattr(project, name):
            new[name] = value
    for name in ("health_cmd", "health_http"):
        value = getattr(spec, name)
        if value is not None and (value or None) != getattr(project, name):
            new[name] = value or None  # empty: no such check
    if spec.on is not None and spec.on != project.constraints:
        new["constraints"] = list(spec.on)
    if spec.every_node is not None and spec.every_node != project.every_node:
        raise InvalidRequest(
            "every-node cannot change in place: remove the project and add it again"
        )
    env = {k: v for k, v in project.env.items() if k not in spec.unset_env}
    env.update(spec.env)
    if env != project.env:
        new["env"] = env
    secrets = {k: v for k, v in project.secrets.items() if k not in spec.unset_secrets}
    secrets.update(spec.secrets)
    if secrets != project.secrets:
        new["secrets"] = secrets
    both = sorted(set(env) & set(secrets))
    if both:
        raise InvalidRequest(
            f"{', '.join(both)}: a name may be env or a secret, not both "
            "(unset the one to make it the other)"
        )
    try:
        validate.check_env({**env, **secrets})
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    return new


def apply(
    cluster: Cluster, project: ProjectRecord, spec: SetProject, user: str
) -> tuple[ProjectRecord, list[str]]:
    """Change `project` as `spec` says, for `user`; returns it and the changed fields' names."""
    new = wanted(project, spec)
    if not new:
        return project, []
    fields = sorted(new)
    with cluster._write(durable=True):
        cluster._keep(project)
        for name, value in new.items():
            setattr(project, name, value)
        _record(project, user, fields)
        cluster.log.note(project, changed_by(user, fields))
        if RESTART_FIELDS & new.keys() and project.node is not None:
            project.restart += 1  # its node restarts it once, with the new values
        node = project.node
        if node is not None and _must_move(cluster, project, new):
            cluster.placement.move_elsewhere(project)
        elif (
            "constraints" in new
            and node is None
            and project.desired is Desired.RUNNING
            and not project.every_node  # placed by its copies (every_node.py), never itself
        ):
            cluster.placement.place(project)  # placed now, or its reason names the new ones
        else:
            cluster.store.save_project(project)
        cluster._changed(node)
        cluster._announce("project", project.name)
    return project, fields


def set_variables(
    cluster: Cluster, projects: list[ProjectRecord], values: dict[str, Any], user: str
) -> None:
    """Write `values` into each project's persistent variables; each starts again under a new
    epoch, so its node writes them to its variables file (as `reset` does)."""
    merged = {p.name: {**p.variables, **values} for p in projects}
    for name, new in merged.items():
        try:
            variables.check_size(new)
        except variables.VariablesTooLarge as exc:
            raise TooLarge(f"project {name!r}: {exc}") from None
    with cluster._write(durable=True):
        for project in projects:
            cluster._keep(project)
            project.variables = merged[project.name]
            project.epoch += 1
            if project.node is not None:
                cluster._set_status(project, ProjectStatus.PENDING)
            _record(project, user, ["variables"])
            cluster.log.note(project, f"variables {', '.join(sorted(values))} written by {user}")
            cluster.store.save_project(project)
            cluster._changed(project.node)
            cluster._announce("project", project.name)


def changed_by(user: str, fields: list[str]) -> str:
    """The note `set` leaves in a project's log: `changed by alice: command, env`."""
    return f"changed by {user}: {', '.join(fields)}"


def _record(project: ProjectRecord, user: str, fields: list[str]) -> None:
    """Note a change in the project's history: when, by whom, which fields."""
    project.history = [
        *project.history[-(HISTORY_KEPT - 1) :],
        {"at": utc_now(), "by": user, "fields": fields},
    ]


def _must_move(cluster: Cluster, project: ProjectRecord, new: dict[str, Any]) -> bool:
    """Whether a changed project may no longer stay on its node: it outgrew it (ram, disk) or
    the node does not meet its new constraints (`--on`)."""
    if {"ram", "disk"} & new.keys() and not _still_fits(cluster, project):
        return True
    node = cluster.state.nodes.get(project.node or "")
    # Only its constraints here: a drained node's projects leave as the drain has them leave.
    return "constraints" in new and node is not None and not cluster.placement.meets(project, node)


def _still_fits(cluster: Cluster, project: ProjectRecord) -> bool:
    """Whether the project, asking for what it now asks, still fits on its node."""
    assert project.node is not None
    cluster.state.stale_views.add(project.node)
    need = cluster.state.need(project)
    view = cluster.state.view(project.node)
    if view is None:
        return False
    # The view counts the project already; take it out to ask whether it fits.
    rest = scheduler.with_project(view, need, -1)
    return rest.free_ram >= need.ram and rest.free_storage >= need.disk

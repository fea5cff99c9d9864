"""POST /controller: a person's or a tool's actions, one handler per action in `ACTIONS`.

The request carries a controller token (a Bearer header or `access-token`) and an `action`;
the token's role must allow the action (roles.ACTION_ROLES: else 403 naming both roles), and
the table maps the action to its handler, which parses any further fields, calls the cluster or
the command book, and answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from syncopate.command_protocol import CommandAnalyze, CommandQuery, CommandRef, CommandSend
from syncopate.constraints import label_text
from syncopate.errors import InvalidRequest
from syncopate.manager.auth import Caller, bearer, check_controller_token
from syncopate.manager.command_wire import commands_info
from syncopate.manager.context import STATE, ManagerState, parse, read_body, success
from syncopate.manager.guard import guarded
from syncopate.manager.throttle import CONTROLLER
from syncopate.manager.tokens import make_token, revoke_token, token_table
from syncopate.project_protocol import (
    AddProject,
    RemoveProject,
    Rollout,
    SetProject,
    SetVariables,
)
from syncopate.protocol import (
    ACTIONS,
    DEFAULT_LOG_LINES,
    ControllerRequest,
    NodeLabel,
    TokenMake,
    TokenRef,
)
from syncopate.roles import ACTION_ROLES, Role


@dataclass(frozen=True)
class Call:
    """One controller request, as every action's handler gets it."""

    state: ManagerState
    request: ControllerRequest
    body: dict[str, Any]  # the whole body: some actions parse more fields from it
    caller: Caller  # who is behind the controller token, and their role
    route: str

    @property
    def user(self) -> str:
        """The name behind the controller token (commands and project logs record it)."""
        return self.caller.name

    def answer(self, **data: Any) -> web.Response:
        return success(self.route, **data)


Action = Callable[[Call], web.Response]


async def controller(request: web.Request) -> web.Response:
    """POST /controller: check the token, then hand the request to its action's handler."""
    state = request.app[STATE]
    body = await read_body(request)
    call = parse(ControllerRequest, body)
    token = bearer(request.headers) or call.access_token
    caller = guarded(request, CONTROLLER, check_controller_token, state.store, token)
    handler = ACTION_HANDLERS.get(call.action)
    if handler is None:
        if call.action.startswith("command-"):
            parse(CommandRef, body)  # a command action's id is checked first, known or not
        raise InvalidRequest(f"unknown action {call.action!r}; one of: {', '.join(ACTIONS)}")
    caller.require(ACTION_ROLES[call.action], f"action {call.action}")
    return handler(Call(state, call, body, caller, request.path))


# projects and nodes ---------------------------------------------------------------------------
def _status(call: Call) -> web.Response:
    return call.answer(projects=call.state.cluster.status(call.request.projects))


def _nodes(call: Call) -> web.Response:
    return call.answer(nodes=call.state.cluster.node_table())


def _logs(call: Call) -> web.Response:
    projects = call.request.projects
    if len(projects) != 1:
        raise InvalidRequest(
            f"action logs needs exactly one project name in `projects`, not {len(projects)}"
        )
    lines = call.request.lines or DEFAULT_LOG_LINES
    return call.answer(**call.state.cluster.logs(projects[0], lines))


def _one_project(call: Call) -> str:
    projects = call.request.projects
    if len(projects) != 1:
        raise InvalidRequest(
            f"action {call.request.action} needs exactly one project name in `projects`, "
            f"not {len(projects)}"
        )
    return projects[0]


def _rollout(call: Call) -> web.Response:
    name = _one_project(call)
    cluster = call.state.cluster
    if not parse(Rollout, call.body).retry:
        return call.answer(projects=cluster.status([name]))
    call.caller.require(Role.OPERATOR, "action rollout with retry")
    project = cluster.rollout_retry(name)
    bad = (project.bad_commit or "")[:7]
    return call.answer(
        information=f"{name}: its node tries {bad} again (retry {project.rollout_retry})",
        projects={name: cluster.project_info(project)},
    )


def _add(call: Call) -> web.Response:
    cluster = call.state.cluster
    project = cluster.add(parse(AddProject, _project_field(call.request)))
    info = cluster.project_info(project)
    if project.every_node:
        nodes = ", ".join(info["copies"])
        waits = info["reason"] or info["status"]
        where = f"a copy on {nodes}" if nodes else f"no copy yet: {waits}"
    elif project.node:
        where = f"placed on {project.node}"
    else:
        where = f"not placed: {project.reason or project.status.value}"
    return call.answer(information=f"added {project.name}; {where}", projects={project.name: info})


def _set(call: Call) -> web.Response:
    cluster = call.state.cluster
    project, changed = cluster.set(parse(SetProject, _project_field(call.request)), call.user)
    if not changed:
        information = f"{project.name}: nothing changed"
    else:
        information = f"changed {project.name}: {', '.join(changed)}"
    return call.answer(
        information=information,
        changed=changed,
        projects={project.name: cluster.project_info(project)},
    )


def _set_variables(call: Call) -> web.Response:
    spec = parse(SetVariables, call.body)
    names = call.request.projects
    if bool(names) == spec.all:
        # Writing into every project by an empty list is too easy a mistake: ask for `all`.
        raise InvalidRequest("action set-variables needs `projects` (names) or `all: true`, one")
    cluster = call.state.cluster
    written = cluster.set_variables(names, spec.variables, call.user)
    return call.answer(
        information=f"wrote {', '.join(sorted(spec.variables))} into {len(written)} project(s)",
        projects=cluster.status(written),
    )


def _remove(call: Call) -> web.Response:
    spec = parse(RemoveProject, _project_field(call.request))
    call.state.cluster.remove(spec)
    return call.answer(information=f"removed {spec.name}")


def _project_field(call: ControllerRequest) -> dict[str, Any]:
    if call.project is None:
        raise InvalidRequest(f"action {call.action} needs `project`: an object with name and url")
    if not isinstance(call.project, dict):
        raise InvalidRequest("`project` must be an object")
    return call.project


def _lifecycle(done: str) -> Action:
    """start, stop, restart, reset: the cluster's method of the action's name, on `projects`
    (and who asked, for the projects' logs)."""

    def handle(call: Call) -> web.Response:
        cluster = call.state.cluster
        names = getattr(cluster, call.request.action)(call.request.projects, call.user)
        return call.answer(
            information=f"{done} {len(names)} project(s)",
            projects=cluster.status(names) if names else {},
        )

    return handle


def _node_name(call: Call) -> str:
    if not call.request.node:
        raise InvalidRequest(f"action {call.request.action} needs `node`: the node's name")
    return call.request.node


def _node_drain(call: Call) -> web.Response:
    node = _node_name(call)
    moving = call.state.cluster.drain(node)
    return call.answer(information=f"draining {node}", projects=moving)


def _node_undrain(call: Call) -> web.Response:
    node = _node_name(call)
    call.state.cluster.undrain(node)
    return call.answer(information=f"{node} accepts projects again")


def _node_label(call: Call) -> web.Response:
    node = _node_name(call)
    change = parse(NodeLabel, call.body)
    labels = call.state.cluster.label(node, change.labels, change.remove)
    shown = label_text(labels) or "none"
    return call.answer(information=f"{node} labels: {shown}", labels=labels)


def _node_forget(call: Call) -> web.Response:
    node = _node_name(call)
    call.state.cluster.forget(node)
    return call.answer(information=f"forgot {node}")


# the command channel --------------------------------------------------------------------------
def _command_send(call: Call) -> web.Response:
    sent = call.state.commands.send(call.user, parse(CommandSend, call.body))
    where = ", ".join(c.node for c in sent)
    return call.answer(
        information=f"sent {len(sent)} command(s) to {where}", commands=commands_info(sent)
    )


def _command_list(call: Call) -> web.Response:
    found, more = call.state.commands.find(parse(CommandQuery, call.body))
    return call.answer(
        information=f"{len(found)} command(s)" + (", more before" if more else ""),
        commands=commands_info(found),
        more=more,
        **{"next-before": found[-1].id if more and found else None},
    )


def _command_show(call: Call) -> web.Response:
    command = call.state.commands.get(parse(CommandRef, call.body).id)
    return call.answer(commands=commands_info([command]))


def _command_analyze(call: Call) -> web.Response:
    parse(CommandRef, call.body)  # a bad id is the one complaint, as for the other commands
    analyzed = parse(CommandAnalyze, call.body)
    command = call.state.commands.analyze(analyzed.id, analyzed.analysis, call.user)
    return call.answer(
        information=f"command {command.id} analyzed", commands=commands_info([command])
    )


def _command_cancel(call: Call) -> web.Response:
    command = call.state.commands.cancel(parse(CommandRef, call.body).id, call.user)
    return call.answer(
        information=f"command {command.id} canceled", commands=commands_info([command])
    )


# controller tokens (admins) --------------------------------------------------------------------
def _tokens(call: Call) -> web.Response:
    table = token_table(call.state.store)
    return call.answer(information=f"{len(table)} token(s)", tokens=table)


def _token_make(call: Call) -> web.Response:
    spec = parse(TokenMake, call.body)
    token, role = make_token(call.state.store, spec.name, Role(spec.role) if spec.role else None)
    return call.answer(
        information=f"made {spec.name}'s token ({role.value}); it is shown this once",
        name=spec.name,
        role=role.value,
        token=token,
    )


def _token_revoke(call: Call) -> web.Response:
    name = parse(TokenRef, call.body).name
    revoke_token(call.state.store, name)
    return call.answer(information=f"revoked {name}'s token")


# Every action of protocol.ACTIONS, in its order, and its handler (a unit test holds them equal).
ACTION_HANDLERS: dict[str, Action] = {
    "add": _add,
    "set": _set,
    "set-variables": _set_variables,
    "remove": _remove,
    "start": _lifecycle("started"),
    "stop": _lifecycle("stopped"),
    "restart": _lifecycle("restarted"),
    "reset": _lifecycle("reset"),
    "status": _status,
    "nodes": _nodes,
    "node-drain": _node_drain,
    "node-undrain": _node_undrain,
    "node-forget": _node_forget,
    "node-label": _node_label,
    "logs": _logs,
    "rollout": _rollout,
    "command-send": _command_send,
    "command-list": _command_list,
    "command-show": _command_show,
    "command-analyze": _command_analyze,
    "command-cancel": _command_cancel,
    "tokens": _tokens,
    "token-make": _token_make,
    "token-revoke": _token_revoke,
}

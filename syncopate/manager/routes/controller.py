"""POST /controller: a person's or a tool's actions, one handler per action in `ACTIONS`.

The request carries a controller token (a Bearer header or `access-token`) and an `action`;
the table maps the action to its handler, which parses any further fields, calls the cluster or
the command book, and answers.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from syncopate.errors import InvalidRequest
from syncopate.manager.auth import bearer, check_controller_token
from syncopate.manager.commands import command_info
from syncopate.manager.context import STATE, ManagerState, parse, read_body, success
from syncopate.protocol import (
    ACTIONS,
    DEFAULT_LOG_LINES,
    AddProject,
    CommandAnalyze,
    CommandQuery,
    CommandRef,
    CommandSend,
    ControllerRequest,
    RemoveProject,
)


async def controller(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = await read_body(request)
    call = parse(ControllerRequest, body)
    user = check_controller_token(state.store, bearer(request.headers) or call.access_token)
    cluster = state.cluster
    action = call.action
    route = request.path
    if action.startswith("command-"):
        return command_action(state, action, body, user, route)
    if action == "status":
        return success(route, projects=cluster.status(call.projects))
    if action == "nodes":
        return success(route, nodes=cluster.node_table())
    if action == "logs":
        if len(call.projects) != 1:
            raise InvalidRequest(
                f"action logs needs exactly one project name in `projects`, "
                f"not {len(call.projects)}"
            )
        return success(route, **cluster.logs(call.projects[0], call.lines or DEFAULT_LOG_LINES))
    if action == "add":
        spec = parse(AddProject, _project_field(call))
        project = cluster.add(spec)
        where = (
            f"placed on {project.node}"
            if project.node
            else f"not placed: {project.reason or project.status.value}"
        )
        return success(
            route,
            information=f"added {project.name}; {where}",
            projects={project.name: cluster.project_info(project)},
        )
    if action == "remove":
        spec_remove = parse(RemoveProject, _project_field(call))
        cluster.remove(spec_remove)
        return success(route, information=f"removed {spec_remove.name}")
    if action in ("start", "stop", "restart", "reset"):
        names = getattr(cluster, action)(call.projects)
        verb = {"start": "started", "stop": "stopped", "restart": "restarted", "reset": "reset"}
        return success(
            route,
            information=f"{verb[action]} {len(names)} project(s)",
            projects=cluster.status(names) if names else {},
        )
    if action in ("node-drain", "node-undrain", "node-forget"):
        if not call.node:
            raise InvalidRequest(f"action {action} needs `node`: the node's name")
        if action == "node-drain":
            moving = cluster.drain(call.node)
            return success(route, information=f"draining {call.node}", projects=moving)
        if action == "node-undrain":
            cluster.undrain(call.node)
            return success(route, information=f"{call.node} accepts projects again")
        cluster.forget(call.node)
        return success(route, information=f"forgot {call.node}")
    raise InvalidRequest(f"unknown action {action!r}; one of: {', '.join(ACTIONS)}")


def command_action(
    state: ManagerState, action: str, body: dict[str, Any], user: str, route: str
) -> web.Response:
    """The command channel's controller actions; `user` is the name behind the token."""
    book = state.commands
    if action == "command-send":
        sent = book.send(user, parse(CommandSend, body))
        where = ", ".join(c.node for c in sent)
        return success(
            route,
            information=f"sent {len(sent)} command(s) to {where}",
            commands={str(c.id): command_info(c) for c in sent},
        )
    if action == "command-list":
        found, more = book.find(parse(CommandQuery, body))
        return success(
            route,
            information=f"{len(found)} command(s)" + (", more before" if more else ""),
            commands={str(c.id): command_info(c) for c in found},
            more=more,
            **{"next-before": found[-1].id if more and found else None},
        )
    ref = parse(CommandRef, body)
    if action == "command-show":
        command = book.get(ref.id)
        return success(route, commands={str(command.id): command_info(command)})
    if action == "command-analyze":
        analyzed = parse(CommandAnalyze, body)
        command = book.analyze(analyzed.id, analyzed.analysis, user)
        return success(
            route,
            information=f"command {command.id} analyzed",
            commands={str(command.id): command_info(command)},
        )
    if action == "command-cancel":
        command = book.cancel(ref.id, user)
        return success(
            route,
            information=f"command {command.id} canceled",
            commands={str(command.id): command_info(command)},
        )
    raise InvalidRequest(f"unknown action {action!r}; one of: {', '.join(ACTIONS)}")


def _project_field(call: ControllerRequest) -> dict[str, Any]:
    if call.project is None:
        raise InvalidRequest(f"action {call.action} needs `project`: an object with name and url")
    if not isinstance(call.project, dict):
        raise InvalidRequest("`project` must be an object")
    return call.project

"""The agent's and the seed node's routes: join, poll, report, answer a command, leave.

POST /node-initialize (join with the password), /node-status (the long poll that hands out
assignments and commands), /node-update (what the node runs), /node-command-result and
/node-leave. All but the join carry the node's name and access token, which the cluster checks;
every credential check goes through the throttle (guard.py): the join password in the `join`
scope, a node's token in its node's (`node:<name>`), so a guesser locks out only what it guesses.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from aiohttp import web

from syncopate.command_protocol import CommandResultRequest
from syncopate.errors import RequestError, Unauthorized, Unavailable
from syncopate.manager.auth import secret_matches
from syncopate.manager.context import (
    STATE,
    ManagerState,
    client_address,
    json_answer,
    parse,
    read_body,
    success,
    transport_open,
)
from syncopate.manager.guard import guarded
from syncopate.manager.records import NodeRecord
from syncopate.manager.throttle import JOIN, node_scope
from syncopate.protocol import (
    MAX_WAIT_SECONDS,
    InitializeRequest,
    LeaveRequest,
    ProjectReport,
    StatusRequest,
    UpdateRequest,
)

log = logging.getLogger("syncopate.manager")


async def node_initialize(request: web.Request) -> web.Response:
    state = request.app[STATE]
    address = client_address(request)
    body = await read_body(request)
    join = parse(InitializeRequest, body)
    guarded(request, JOIN, _check_password, state, join.syncopate_password)
    name, token = state.cluster.initialize(join, address)
    log.info("node %s joined from %s", name, address)
    return success(request.path, name=name, **{"access-token": token})


def _check_password(state: ManagerState, password: str) -> None:
    if not secret_matches(password, state.password_hash):
        raise Unauthorized(
            "wrong join password; ask the manager's owner for it (it may have been rotated: "
            "`syncopate manager join-command` on the manager's machine prints the current line)"
        )


async def node_status(request: web.Request) -> web.Response:
    state = request.app[STATE]
    poll = parse(StatusRequest, await read_body(request))
    cluster = state.cluster
    node = guarded(
        request, node_scope(poll.name), cluster.authenticate_node, poll.name, poll.access_token
    )
    cluster.touch(node, client_address(request))
    if poll.metrics is not None:
        cluster.measured(node, poll.metrics)
    # Before the hold: what the node says now is taken now, as a /node-update would be, and
    # committed before the hold (a refused commit fails this poll, not a later one).
    with cluster.joining() as joined:
        refused, took = _take_reports(state, node, poll)
    if took:
        await cluster.committed(joined)
    held = 0.0
    wait = poll.wait
    # Held for seconds by thousands of nodes: the parsed body (its reports) is not kept.
    del poll
    if wait:
        limit = min(wait, MAX_WAIT_SECONDS, cluster.settings.longest_hold)
        began = time.monotonic()
        await cluster.wait_for_change(node.name, limit)
        held = time.monotonic() - began
        if not transport_open(request):
            # The node went away while we held its request; do not count this as contact.
            return json_answer({}, status=499)
        cluster.touch(node)
    # Only Syncopate's agent runs commands; a seed node would drop them unanswered, so
    # for one they stay requested and time out as not collected, which says what happened.
    # Collected first: it is a write, and one the store refuses (503) must leave this node's
    # long poll unanswered, as if the request had not come.
    commands = state.commands.collect(node.name) if node.agent_version else None
    answer = cluster.assignments(node)
    answer["manager-run"], answer["sequence"] = state.run, next(state.answers)
    if commands is not None:
        answer["commands"] = commands
    answer.update(_poll_fields(refused, held))
    return json_answer(answer)


def _poll_fields(refused: dict[str, dict[str, Any]], held: float) -> dict[str, Any]:
    """The answer's fields on its reports. `held` also tells the agent this manager takes
    reports on the poll: an older one sends neither and ignores `reports`, and the agent then
    reports by /node-update."""
    return {"refused": refused, "held": round(held, 4)}


def _take_reports(
    state: ManagerState, node: NodeRecord, poll: StatusRequest
) -> tuple[dict[str, dict[str, Any]], bool]:
    """Apply each report riding on a poll exactly as /node-update would; the refused ones by
    project name, each with what /node-update would have answered (code, reason, status), and
    whether any was taken (the caller then waits for the commits, group_commit.py).

    A report the manager cannot take now (503: its store refused the write) fails the whole
    poll, as it would fail a /node-update, so the node sends it again.
    """
    refused: dict[str, dict[str, Any]] = {}
    took = False
    for index, item in enumerate(poll.reports or ()):
        name = item.get("project-name")
        try:
            # Taken as /node-update takes one (its name and token are the poll's, checked).
            state.cluster.update(node, parse(ProjectReport, item))
            took = True
        except Unavailable:
            raise
        except RequestError as exc:
            key = name if isinstance(name, str) else f"reports[{index}]"
            code = exc.code if exc.code is not None else exc.status
            refused[key] = {"code": code, "reason": exc.message, "status": exc.status}
    return refused, took


async def node_update(request: web.Request) -> web.Response:
    state = request.app[STATE]
    report = parse(UpdateRequest, await read_body(request))
    node = guarded(
        request,
        node_scope(report.name),
        state.cluster.authenticate_node,
        report.name,
        report.access_token,
    )
    state.cluster.touch(node, client_address(request))
    with state.cluster.joining() as joined:
        state.cluster.update(node, report)
    await state.cluster.committed(joined)  # grouped with others' (group_commit.py)
    return success(request.path)


async def node_command_result(request: web.Request) -> web.Response:
    state = request.app[STATE]
    result = parse(CommandResultRequest, await read_body(request))
    node = guarded(
        request,
        node_scope(result.name),
        state.cluster.authenticate_node,
        result.name,
        result.access_token,
    )
    state.cluster.touch(node, client_address(request))
    command = state.commands.respond(node.name, result)
    return success(request.path, information=f"command {command.id} responded")


async def node_leave(request: web.Request) -> web.Response:
    state = request.app[STATE]
    leave = parse(LeaveRequest, await read_body(request))
    node = guarded(
        request,
        node_scope(leave.name),
        state.cluster.authenticate_node,
        leave.name,
        leave.access_token,
    )
    moved = state.cluster.leave(node)
    log.info("node %s left; moving %d project(s)", node.name, len(moved))
    return success(request.path, information=f"moving {len(moved)} project(s)", projects=moved)

"""GET|POST /hw_supervisor: lite devices, in the hardware_synchronizer seed's protocol.

A device (or a controller acting for it) names the device as `user` and sends its token as
`pword`; every answer, success or failure, carries the device's status fields (DESIGN section 7).
"""

from __future__ import annotations

import math
import time
from typing import Any

from aiohttp import web

from syncopate.command_protocol import CommandSend, HwCredentials, HwRequest
from syncopate.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NotAllowed,
    NotFound,
    RequestError,
    TooManyAttempts,
    Unauthorized,
)
from syncopate.manager.auth import Caller, check_controller_token, secret_matches
from syncopate.manager.command_wire import blank_device_status
from syncopate.manager.context import (
    STATE,
    ManagerState,
    client_address,
    json_answer,
    parse,
    read_body,
)
from syncopate.manager.guard import check_locked, count_failure
from syncopate.manager.records import NodeRecord
from syncopate.manager.throttle import CONTROLLER, node_scope
from syncopate.roles import HW_ROLES

DEVICE_OPERATIONS = frozenset({"status_query", "hw_command_retrieval", "hw_response_provide"})
CONTROLLER_OPERATIONS = frozenset({"status_query", "hw_command_request", "server_analysis_provide"})


async def hw_supervisor(request: web.Request) -> web.Response:
    """GET|POST /hw_supervisor: every answer is the device's status fields (DESIGN section 7).

    `user`/`pword` are a device's node name and token (the device's side: status, retrieval,
    response), or a device's name and a controller token (the requesting side: status, request,
    analysis). Parameters come as a query string or a form.
    """
    state = request.app[STATE]
    params: dict[str, Any] = dict(request.query)
    if request.method == "POST" and request.body_exists:
        params.update(await read_body(request))
    user_field = str(params.get("user", ""))[:256]
    shown: str | None = None  # the device whose fields the caller may see
    try:
        # Who asks comes first: a caller who may see the device gets its fields on any error.
        node, who, caller = authenticate_hw(request, state, parse(HwCredentials, params))
        as_device = caller is None
        shown = node.name
        hw = parse(HwRequest, params)
        if request.method == "GET" and hw.command != "status_query":
            raise NotAllowed(f"{hw.command} changes the device's state: send it with POST")
        allowed = DEVICE_OPERATIONS if as_device else CONTROLLER_OPERATIONS
        if hw.command not in allowed:
            side = "the device" if as_device else "a controller"
            others = ", ".join(sorted(allowed - {"status_query"}))
            raise Forbidden(f"{hw.command} is not for {side}; {side} sends {others}")
        if caller is not None:
            caller.require(HW_ROLES[hw.command], hw.command)
        if as_device:
            state.cluster.touch(node, client_address(request))
        # Only now that the request is sound: the node is a device from here on.
        state.cluster.mark_lite(node)
        information = hw_operation(state, node, who, hw)
        body = {
            **state.commands.device_status(node.name),
            "request-status": "success",
            "request-information": information,
        }
        return json_answer(body)
    except RequestError as exc:
        fields = state.commands.device_status(shown) if shown else blank_device_status(user_field)
        body = {
            **fields,
            "request-status": "failure",
            "request-information": exc.message,
            "error": exc.message,
        }
        response = json_answer(body, status=exc.status)
        if isinstance(exc, TooManyAttempts):
            response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        return response


def authenticate_hw(
    request: web.Request, state: ManagerState, hw: HwCredentials
) -> tuple[NodeRecord, str, Caller | None]:
    """(the device, who is asking, the controller token's caller or None when the device itself
    asks); Unauthorized, or TooManyAttempts, otherwise.

    The `pword` is tried as the device's token (scope `node:<user>`), then as a controller token
    (scope `controller`), each only while the address is not locked out of that scope, and a
    wrong one counts in every scope it was tried in: guessing either goes no faster here than
    on its own routes, and wrong controller tokens never lock a device out of its own side.
    Changes nothing: the caller marks the node a lite device once the request is sound.
    """
    node = state.cluster.nodes.get(hw.user)
    device = node_scope(hw.user)
    address, now = client_address(request), time.monotonic()
    device_locked = node is not None and state.throttle.retry_after(address, device, now) > 0
    tried = []
    if node is not None and not device_locked:
        if secret_matches(hw.pword, node.token_hash):
            if node.agent_version:
                raise Forbidden(
                    f"{node.name} runs the Syncopate agent; /hw_supervisor is for lite devices"
                )
            return node, node.name, None
        tried.append(device)
    if state.throttle.retry_after(address, CONTROLLER, now) > 0:
        for scope in tried:
            count_failure(request, scope)
        if device_locked:
            check_locked(request, device)  # both locked: the one the request names is said
        check_locked(request, CONTROLLER)  # raises: not tried as a controller token
    try:
        caller = check_controller_token(state.store, hw.pword)
    except Unauthorized:
        for scope in [*tried, CONTROLLER]:
            count_failure(request, scope)
        if device_locked:
            check_locked(request, device)  # the device's own token was not even tried: say so
        raise Unauthorized(
            f"wrong pword for {hw.user!r}: a device sends its access token, a controller "
            "its controller token"
        ) from None
    if node is None:
        raise NotFound(f"no device named {hw.user!r}")
    if node.agent_version:
        raise Conflict(
            f"{node.name} runs the Syncopate agent: send it commands with "
            "`syncopate command send`, not /hw_supervisor"
        )
    return node, caller.name, caller


def hw_operation(state: ManagerState, node: NodeRecord, who: str, hw: HwRequest) -> str:
    """Carry out one seed operation; the answer's `request-information`."""
    book = state.commands
    if hw.command == "status_query":
        return "status"
    if hw.command == "hw_command_request":
        if not hw.hw_comm:
            raise InvalidRequest("hw_command_request needs hw_comm: the Python program to run")
        (command,) = book.send(who, CommandSend(nodes=[node.name], code=hw.hw_comm))
        return f"command {command.id} requested"
    if hw.command == "hw_command_retrieval":
        return f"command {book.device_retrieve(node.name).id} collected"
    if hw.command == "hw_response_provide":
        if hw.hw_resp is None:
            raise InvalidRequest("hw_response_provide needs hw_resp: the program's response")
        return f"command {book.device_respond(node.name, hw.hw_resp).id} responded"
    if hw.server_anal is None:
        raise InvalidRequest("server_analysis_provide needs server_anal: the analysis")
    return f"command {book.device_analyze(node.name, hw.server_anal, who).id} analyzed"

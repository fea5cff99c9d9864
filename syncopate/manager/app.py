"""The manager's aiohttp application: routes that translate HTTP to cluster calls and back.

Handlers hold no rules: they parse the wire model, call the cluster, and answer. Domain errors
become HTTP statuses in one middleware, which also fills in the seed's result fields.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.http_exceptions import HttpProcessingError

from syncopate import __version__, validate
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
from syncopate.manager.auth import (
    JoinThrottle,
    bearer,
    check_controller_token,
    hash_secret,
    secret_matches,
)
from syncopate.manager.cluster import Cluster, ClusterSettings
from syncopate.manager.commands import CommandBook, command_info
from syncopate.manager.context import (
    STATE,
    ManagerSettings,
    ManagerState,
    client_address,
    failure,
    parse,
    read_body,
    success,
    transport_open,
)
from syncopate.manager.events import EventHub
from syncopate.manager.openapi import document as openapi_document
from syncopate.manager.records import NodeRecord
from syncopate.manager.store import Store
from syncopate.protocol import (
    ACTIONS,
    DEFAULT_LOG_LINES,
    MAX_BODY_BYTES,
    MAX_WAIT_SECONDS,
    AddProject,
    CommandAnalyze,
    CommandQuery,
    CommandRef,
    CommandResultRequest,
    CommandSend,
    ControllerRequest,
    HwCredentials,
    HwRequest,
    InitializeRequest,
    LeaveRequest,
    RemoveProject,
    StatusRequest,
    UpdateRequest,
)

log = logging.getLogger("syncopate.manager")
# aiohttp's HTTP-level log (a request it could not parse, an exception it caught), see make_runner.
http_log = logging.getLogger("syncopate.manager.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map errors to statuses with a reason; time every request for /metrics."""
    state = request.app[STATE]
    route = (
        request.match_info.route.resource.canonical
        if request.match_info.route.resource
        else "unmatched"
    )
    started = time.perf_counter()
    response: web.StreamResponse
    try:
        response = await handler(request)
    except RequestError as exc:
        headers = {}
        if isinstance(exc, TooManyAttempts):
            headers["Retry-After"] = str(int(exc.retry_after) + 1)
        response = failure(request.path, exc.message, exc.status, **exc.details)
        response.headers.update(headers)
    except web.HTTPRequestEntityTooLarge:
        response = failure(
            request.path, f"request body is over the {MAX_BODY_BYTES} byte limit", 413
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = failure(request.path, exc.reason, exc.status)
    except asyncio.CancelledError:
        raise
    except ConnectionError as exc:
        # The client hung up while we answered (say, during the /events handshake): nothing
        # to answer and nothing wrong here. aiohttp drops the response it cannot write.
        log.info(
            "client %s went away during %s %s: %s",
            request.remote,
            request.method,
            request.path,
            exc,
        )
        response = web.Response(status=499)
    except Exception:
        log.exception("internal error on %s %s", request.method, request.path)
        response = failure(request.path, "internal error in the manager (see its log)", 500)
    state.metrics.observe(route, response.status, time.perf_counter() - started)
    return response


# node routes ----------------------------------------------------------------------------------
async def node_initialize(request: web.Request) -> web.Response:
    state = request.app[STATE]
    address = client_address(request)
    now = time.monotonic()
    wait = state.throttle.retry_after(address, now)
    if wait > 0:
        raise TooManyAttempts(
            f"too many wrong passwords from {address}; try again in {wait:.0f}s", wait
        )
    body = await read_body(request)
    join = parse(InitializeRequest, body)
    if not secret_matches(join.syncopate_password, state.password_hash):
        state.throttle.failed(address, now)
        raise Unauthorized("wrong syncopate-password; ask the manager's owner for the password")
    state.throttle.succeeded(address)
    name, token = state.cluster.initialize(join, address)
    log.info("node %s joined from %s", name, address)
    return success(request.path, name=name, **{"access-token": token})


async def node_status(request: web.Request) -> web.Response:
    state = request.app[STATE]
    poll = parse(StatusRequest, await read_body(request))
    cluster = state.cluster
    node = cluster.authenticate_node(poll.name, poll.access_token)
    cluster.touch(node, client_address(request))
    if poll.wait:
        limit = min(poll.wait, MAX_WAIT_SECONDS, cluster.settings.node_timeout / 2)
        await cluster.wait_for_change(node.name, limit)
        if not transport_open(request):
            # The node went away while we held its request; do not count this as contact.
            return web.json_response({}, status=499)
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
    return web.json_response(answer)


async def node_update(request: web.Request) -> web.Response:
    state = request.app[STATE]
    report = parse(UpdateRequest, await read_body(request))
    node = state.cluster.authenticate_node(report.name, report.access_token)
    state.cluster.touch(node, client_address(request))
    state.cluster.update(node, report)
    return success(request.path)


async def node_command_result(request: web.Request) -> web.Response:
    state = request.app[STATE]
    result = parse(CommandResultRequest, await read_body(request))
    node = state.cluster.authenticate_node(result.name, result.access_token)
    state.cluster.touch(node, client_address(request))
    command = state.commands.respond(node.name, result)
    return success(request.path, information=f"command {command.id} responded")


async def node_leave(request: web.Request) -> web.Response:
    state = request.app[STATE]
    leave = parse(LeaveRequest, await read_body(request))
    node = state.cluster.authenticate_node(leave.name, leave.access_token)
    moved = state.cluster.leave(node)
    log.info("node %s left; moving %d project(s)", node.name, len(moved))
    return success(request.path, information=f"moving {len(moved)} project(s)", projects=moved)


# controller -----------------------------------------------------------------------------------
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


# lite devices: the hardware_synchronizer seed's protocol -------------------------------------
DEVICE_OPERATIONS = frozenset({"status_query", "hw_command_retrieval", "hw_response_provide"})
CONTROLLER_OPERATIONS = frozenset({"status_query", "hw_command_request", "server_analysis_provide"})


def blank_device_status(user: str) -> dict[str, Any]:
    """The seed's status fields when the caller may not see the device's."""
    return {
        "user": user,
        "state": None,
        "command": "",
        "hw_command": "",
        "hw_response": "",
        "server_analysis": "",
        "time": "",
    }


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
        node, who, as_device = authenticate_hw(state, parse(HwCredentials, params))
        shown = node.name
        hw = parse(HwRequest, params)
        if request.method == "GET" and hw.command != "status_query":
            raise NotAllowed(f"{hw.command} changes the device's state: send it with POST")
        allowed = DEVICE_OPERATIONS if as_device else CONTROLLER_OPERATIONS
        if hw.command not in allowed:
            side = "the device" if as_device else "a controller"
            others = ", ".join(sorted(allowed - {"status_query"}))
            raise Forbidden(f"{hw.command} is not for {side}; {side} sends {others}")
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
        return web.json_response(body)
    except RequestError as exc:
        fields = state.commands.device_status(shown) if shown else blank_device_status(user_field)
        body = {
            **fields,
            "request-status": "failure",
            "request-information": exc.message,
            "error": exc.message,
        }
        return web.json_response(body, status=exc.status)


def authenticate_hw(state: ManagerState, hw: HwCredentials) -> tuple[NodeRecord, str, bool]:
    """(the device, who is asking, whether the device itself asks); Unauthorized otherwise.

    Changes nothing: the caller marks the node a lite device once the request is sound.
    """
    cluster = state.cluster
    node = cluster.nodes.get(hw.user)
    if node is not None and secret_matches(hw.pword, node.token_hash):
        if node.agent_version:
            raise Forbidden(
                f"{node.name} runs the Syncopate agent; /hw_supervisor is for lite devices"
            )
        return node, node.name, True
    try:
        who = check_controller_token(state.store, hw.pword)
    except Unauthorized:
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
    return node, who, False


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


# feeds and probes -----------------------------------------------------------------------------
def followed_logs(request: web.Request) -> frozenset[str]:
    """The projects named by `logs=` query parameters (repeated, or comma-separated)."""
    names = set()
    for value in request.query.getall("logs", []):
        for name in value.split(","):
            if name.strip():
                try:
                    names.add(validate.check_name(name.strip(), "project"))
                except ValueError as exc:
                    raise InvalidRequest(f"logs: {exc}") from None
    return frozenset(names)


async def events(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    token = bearer(request.headers) or request.query.get("access-token")
    check_controller_token(state.store, token)
    logs = followed_logs(request)
    ws = web.WebSocketResponse(heartbeat=20)
    await ws.prepare(request)
    subscriber = state.hub.subscribe(logs)
    state.sockets.add(ws)

    async def pump() -> None:
        while True:
            message = await subscriber.queue.get()
            await ws.send_str(json.dumps(message, separators=(",", ":")))

    sender = asyncio.create_task(pump())
    try:
        async for message in ws:
            if message.type == WSMsgType.ERROR:
                break
    finally:
        state.sockets.discard(ws)
        state.hub.unsubscribe(subscriber)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await sender
    return ws


async def health(request: web.Request) -> web.Response:
    state = request.app[STATE]
    counts = state.cluster.counts()
    return web.json_response(
        {
            "status": "ok",
            "version": __version__,
            "uptime": round(time.monotonic() - state.started, 1),
            "nodes": counts["nodes"],
            "projects": counts["projects"],
        }
    )


async def metrics(request: web.Request) -> web.Response:
    state = request.app[STATE]
    counts = state.cluster.counts()
    gauges: dict[str, dict[tuple[tuple[str, str], ...], float]] = {
        "syncopate_nodes": {(("status", s),): float(n) for s, n in counts["nodes"].items()},
        "syncopate_projects": {(("status", s),): float(n) for s, n in counts["projects"].items()},
        "syncopate_event_subscribers": {(): float(len(state.hub.subscribers))},
        "syncopate_held_polls": {(): float(state.cluster.held_polls())},
        "syncopate_commands_waiting": {
            (("state", s),): float(n) for s, n in state.commands.waiting_counts().items()
        },
        "syncopate_uptime_seconds": {(): time.monotonic() - state.started},
    }
    return web.Response(
        text=state.metrics.render(gauges), content_type="text/plain", charset="utf-8"
    )


async def openapi(request: web.Request) -> web.Response:
    """GET /openapi.json: the API's description (no auth: it holds no secrets)."""
    return web.json_response(openapi_document())


# the application ------------------------------------------------------------------------------
async def _background(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    interval = min(max(state.settings.node_timeout / 20, 0.05), 0.25)

    async def monitor() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                state.cluster.tick()
                state.commands.tick()
            except Exception:
                log.exception("monitor tick failed")

    tasks = [asyncio.create_task(monitor()), asyncio.create_task(state.hub.run())]
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    state.store.close()


async def _on_shutdown(app: web.Application) -> None:
    # Held long polls and event feeds would otherwise keep the shutdown waiting.
    state = app[STATE]
    state.cluster.wake_all()
    for ws in list(state.sockets):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"manager shutting down")


def make_app(settings: ManagerSettings, store: Store | None = None) -> web.Application:
    """Build the manager application on a data dir (the store is opened there unless given)."""
    store = store or Store(settings.data_dir)
    cluster_ref: list[Cluster] = []
    book_ref: list[CommandBook] = []

    def lookup(kind: str, name: str) -> dict[str, Any] | None:
        cluster = cluster_ref[0]
        if kind == "command":
            try:
                return command_info(book_ref[0].get(int(name)))
            except NotFound:
                return None
        if kind == "project":
            project = cluster.projects.get(name)
            return cluster.project_info(project) if project else None
        node = cluster.nodes.get(name)
        return cluster.node_info(node) if node else None

    def snapshot() -> dict[str, Any]:
        cluster = cluster_ref[0]
        return {
            "projects": cluster.status([]),
            "nodes": cluster.node_table(),
            "commands": {str(c.id): command_info(c) for c in book_ref[0].recent()},
        }

    hub = EventHub(snapshot, lookup, settings.events_interval)
    cluster = Cluster(
        store,
        ClusterSettings(node_timeout=settings.node_timeout),
        notify=hub.mark,
        notify_lines=hub.add_lines,
    )
    cluster_ref.append(cluster)
    book = CommandBook(
        store,
        cluster.nodes,
        wake=cluster.wake,
        notify=hub.mark,
        margin=settings.command_margin,
    )
    book_ref.append(book)
    state = ManagerState(
        settings=settings,
        store=store,
        cluster=cluster,
        hub=hub,
        commands=book,
        throttle=JoinThrottle(
            max_failures=settings.join_max_failures, lockout=settings.join_lockout
        ),
        password_hash=hash_secret(settings.password),
    )
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[error_middleware])
    app[STATE] = state
    app.router.add_post("/node-initialize", node_initialize)
    app.router.add_post("/node-status", node_status)
    app.router.add_post("/node-update", node_update)
    app.router.add_post("/node-leave", node_leave)
    app.router.add_post("/node-command-result", node_command_result)
    app.router.add_route("GET", "/hw_supervisor", hw_supervisor)
    app.router.add_route("POST", "/hw_supervisor", hw_supervisor)
    app.router.add_post("/controller", controller)
    app.router.add_get("/events", events)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/openapi.json", openapi)
    app.cleanup_ctx.append(_background)
    app.on_shutdown.append(_on_shutdown)
    return app


class ProtocolErrorFilter(logging.Filter):
    """Turns aiohttp's traceback for a request it could not parse into one line.

    aiohttp answers 400 to a malformed request (an over-long URL or header, a bad request line)
    and logs it with `logger.exception`: a traceback per request that anyone can send. The
    fault is the client's, so it is one INFO line naming the client and the problem. Any other
    exception (a bug) keeps its traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            detail = " ".join(str(exc.message).split())[:200]
            record.msg = "refused a malformed HTTP request from %s: %s %s"
            record.args = (remote, exc.code, detail)
            record.exc_info = None
            record.exc_text = None
            record.levelno = logging.INFO
            record.levelname = logging.getLevelName(logging.INFO)
        return True


http_log.addFilter(ProtocolErrorFilter())


def make_runner(app: web.Application) -> web.AppRunner:
    """The runner the manager serves `app` with (the tests use it too)."""
    return web.AppRunner(app, access_log=None, handler_cancellation=True, logger=http_log)

"""The manager's aiohttp application: the factory, its route table, middleware and runner.

`make_app` wires the store, the cluster, the command book and the event hub together and
registers the routes (in routes/: one module per kind of caller). Handlers hold no rules: they
parse the wire model, call the cluster, and answer. Domain errors become HTTP statuses in one
middleware, which also fills in the seed's result fields and times every request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import WSCloseCode, web
from aiohttp.http_exceptions import HttpProcessingError

from syncopate.errors import NotFound, RequestError, TooManyAttempts
from syncopate.manager.cluster import Cluster, ClusterSettings
from syncopate.manager.command_wire import command_info, commands_info
from syncopate.manager.commands import CommandBook
from syncopate.manager.context import (
    STATE,
    ManagerSettings,
    ManagerState,
    failure,
    seed_dialect,
)
from syncopate.manager.events import EventHub
from syncopate.manager.gc_pauses import FULL_EVERY, collect_everything, settle_heap, stop_timing
from syncopate.manager.guard import refuse_locked_route
from syncopate.manager.routes.controller import controller
from syncopate.manager.routes.devices import hw_supervisor
from syncopate.manager.routes.feeds import close_revoked, events, health, metrics, openapi
from syncopate.manager.routes.nodes import (
    node_command_result,
    node_initialize,
    node_leave,
    node_status,
    node_update,
)
from syncopate.manager.sql_store import SqlStore, open_store
from syncopate.protocol import MAX_BODY_BYTES

log = logging.getLogger("syncopate.manager")
# aiohttp's HTTP-level log (a request it could not parse, an exception it caught), see make_runner.
http_log = logging.getLogger("syncopate.manager.http")

# How often the tokens of open /events streams are checked against the store: a token revoked
# (by the CLI, in another process too) loses its streams within this.
TOKEN_CHECK_INTERVAL = 1.0

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
        refuse_locked_route(request)
        response = await handler(request)
    except RequestError as exc:
        headers = {}
        if isinstance(exc, TooManyAttempts):
            headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        response = failure(
            request.path,
            exc.message,
            exc.status,
            code=exc.code,
            seed=seed_dialect(request),
            **exc.details,
        )
        response.headers.update(headers)
    except web.HTTPRequestEntityTooLarge:
        response = failure(
            request.path,
            f"request body is over the {MAX_BODY_BYTES} byte limit",
            413,
            seed=seed_dialect(request),
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = failure(request.path, exc.reason, exc.status, seed=seed_dialect(request))
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


# the application ------------------------------------------------------------------------------
async def _background(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    interval = min(max(state.settings.node_timeout / 20, 0.05), 0.25)
    state.cluster.group.start(state.settings.group_commit_window)
    if state.settings.settle_heap:
        settle_heap(state.gc_pauses)

    async def monitor() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                state.cluster.tick()
                state.commands.tick()
            except Exception:
                log.exception("monitor tick failed")

    async def watch_tokens() -> None:
        while True:
            await asyncio.sleep(TOKEN_CHECK_INTERVAL)
            try:
                await close_revoked(state)
            except Exception:
                log.exception("could not check the tokens of open /events streams")

    async def collect_frozen() -> None:
        # The survivors of young collections are frozen (gc_pauses.py): look at them all now
        # and then, so that any cyclic garbage frozen among them is freed.
        while True:
            await asyncio.sleep(FULL_EVERY)
            found = collect_everything()
            log.info("full collection: %d unreachable objects freed", found)

    tasks = [
        asyncio.create_task(monitor()),
        asyncio.create_task(state.hub.run()),
        asyncio.create_task(watch_tokens()),
    ]
    if state.settings.settle_heap:
        tasks.append(asyncio.create_task(collect_frozen()))
    yield
    try:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        # Whatever ended a task, the batch in flight and the open one end before the store.
        try:
            state.cluster.group.stop()
        finally:
            stop_timing(state.gc_pauses)
            state.store.close()


async def _on_shutdown(app: web.Application) -> None:
    # Held long polls and event feeds would otherwise keep the shutdown waiting.
    state = app[STATE]
    state.cluster.wake_all()
    for ws in list(state.sockets):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"manager shutting down")


def make_app(settings: ManagerSettings, store: SqlStore | None = None) -> web.Application:
    """Build the manager application on a data dir (the store is opened there unless given)."""
    store = store or open_store(settings.data_dir, settings.store)
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
            "commands": commands_info(book_ref[0].recent()),
        }

    hub = EventHub(snapshot, lookup, settings.events_interval)
    cluster = Cluster(
        store,
        ClusterSettings(node_timeout=settings.node_timeout, balance=settings.balance),
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
    state = ManagerState(settings, store, cluster, hub, book)
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

"""What a watcher reads: the /events websocket, /health, /metrics and /openapi.json."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from aiohttp import WSMsgType, web

from syncopate import __version__, validate
from syncopate.errors import InvalidRequest
from syncopate.feed import EVENTS_REVOKED_CODE
from syncopate.manager.auth import bearer, check_controller_token
from syncopate.manager.context import STATE, ManagerState, json_answer
from syncopate.manager.events import EVERY_PROJECT
from syncopate.manager.guard import guarded
from syncopate.manager.leadership import health_fields
from syncopate.manager.openapi import document as openapi_document
from syncopate.manager.pg_store import PgStore
from syncopate.manager.throttle import CONTROLLER

# The close message of a stream whose token was revoked (the client shows it).
REVOKED_MESSAGE = b"the controller token was revoked"


def followed_logs(request: web.Request) -> frozenset[str]:
    """The projects named by `logs=` query parameters (repeated, or comma-separated); `*`
    follows every project's output, those added later included."""
    names = set()
    for value in request.query.getall("logs", []):
        for name in value.split(","):
            if name.strip() == EVERY_PROJECT:
                names.add(EVERY_PROJECT)
            elif name.strip():
                try:
                    names.add(validate.check_project_ref(name.strip()))
                except ValueError as exc:
                    raise InvalidRequest(f"logs: {exc}") from None
    return frozenset(names)


async def events(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    token = bearer(request.headers) or request.query.get("access-token")
    caller = guarded(request, CONTROLLER, check_controller_token, state.store, token)
    logs = followed_logs(request)
    ws = web.WebSocketResponse(heartbeat=20)
    await ws.prepare(request)
    subscriber = state.hub.subscribe(logs)
    state.sockets[ws] = caller.token_hash  # closed when that token is revoked (close_revoked)

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
        state.sockets.pop(ws, None)
        state.hub.unsubscribe(subscriber)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await sender
    return ws


async def close_revoked(state: ManagerState) -> int:
    """Close the open /events streams whose token no longer works (revoked, replaced, or the
    main one rotated), also when the CLI changed it in another process; how many were closed.

    The manager runs it every second (app.py): a revoke ends a token's streams within that.
    """
    if not state.sockets:
        return 0
    live = state.store.tokens.live_hashes()
    gone = [ws for ws, digest in list(state.sockets.items()) if digest not in live]
    for ws in gone:
        state.sockets.pop(ws, None)
    # Together: each close waits for its client's answer (a slow one must not hold the others).
    await asyncio.gather(
        *(ws.close(code=EVENTS_REVOKED_CODE, message=REVOKED_MESSAGE) for ws in gone),
        return_exceptions=True,
    )
    return len(gone)


async def health(request: web.Request) -> web.Response:
    state = request.app[STATE]
    counts = state.cluster.counts()
    return json_answer(
        {
            "status": "ok",
            "version": __version__,
            "uptime": round(time.monotonic() - state.started, 1),
            "nodes": counts["nodes"],
            "projects": counts["projects"],
            "tls": state.settings.tls,
            # Present only when so: plain HTTP beyond loopback, asked for with --insecure.
            **({"insecure": True} if state.settings.insecure else {}),
            **store_fields(state),
        }
    )


def store_fields(state: ManagerState) -> dict[str, Any]:
    """/health on the store: SQLite, or PostgreSQL and the managers sharing it."""
    if state.leadership is None:
        return {"store": "sqlite"}
    return health_fields(state.leadership)


async def metrics(request: web.Request) -> web.Response:
    state = request.app[STATE]
    counts = state.cluster.counts()
    gauges: dict[str, dict[tuple[tuple[str, str], ...], float]] = {
        "syncopate_nodes": {(("status", s),): float(n) for s, n in counts["nodes"].items()},
        "syncopate_projects": {(("status", s),): float(n) for s, n in counts["projects"].items()},
        "syncopate_event_subscribers": {(): float(len(state.hub.subscribers))},
        "syncopate_held_polls": {(): float(state.cluster.held_polls())},
        # Transactions the store committed (a batch of reports is one): the database's writes.
        "syncopate_store_commits_total": {(): float(state.store.commits)},
        "syncopate_commands_waiting": {
            (("state", s),): float(n) for s, n in state.commands.waiting_counts().items()
        },
        "syncopate_uptime_seconds": {(): time.monotonic() - state.started},
        # Counters (they only grow): one project placed at a time, and the time it took.
        "syncopate_placements_total": {(): float(state.cluster.state.placements)},
        "syncopate_placement_seconds_total": {(): state.cluster.state.placement_seconds},
        # PostgreSQL: seconds the manager waited for the database server (pg_store.py).
        **(
            {"syncopate_store_wait_seconds_total": {(): state.store.waited}}
            if isinstance(state.store, PgStore)
            else {}
        ),
        **state.gc_pauses.gauges(),
        **state.cluster.node_gauges(),
    }
    return web.Response(
        text=state.metrics.render(gauges), content_type="text/plain", charset="utf-8"
    )


async def openapi(request: web.Request) -> web.Response:
    """GET /openapi.json: the API's description (no auth: it holds no secrets)."""
    return json_answer(openapi_document())

"""A manager that does not lead stands by (leadership.py): it serves every route by forwarding
it to the leader (forward.py), answers /health itself (its role, and who leads), and tries for
the leadership every second. `stand_by` returns once this manager leads; the caller then loads
the fleet's state from the database and serves it on the same listening socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Callable

from aiohttp import web

from syncopate import __version__
from syncopate.fast_json import dumps
from syncopate.manager.forward import Forwarder, forward_proof
from syncopate.manager.leadership import (
    HEARTBEAT_EVERY,
    TRY_EVERY,
    Leadership,
    health_fields,
)
from syncopate.manager.pg_store import PgStore
from syncopate.protocol import MAX_BODY_BYTES

log = logging.getLogger("syncopate.manager")

# Seconds a standby's in-flight forwards get to end once it leads (its own routes take over).
HANDOVER_TIMEOUT = 1.0


def standby_health(leadership: Leadership, started: float) -> dict[str, object]:
    """/health of a standby: no fleet of its own to count; who leads, and every manager."""
    return {
        "status": "ok",
        "version": __version__,
        "uptime": round(time.monotonic() - started, 1),
        **health_fields(leadership),
    }


async def stand_by(
    store: PgStore,
    leadership: Leadership,
    sock: socket.socket,
    ssl_context: ssl.SSLContext | None,
    stopping: asyncio.Event,
    listening: Callable[[], None],
    pin: str | None = None,
) -> bool:
    """Serve as a standby on `sock` until this manager leads (True) or `stopping` is set
    (False). `listening()` is called once it serves; `pin`: the key pin over HTTPS."""
    started = time.monotonic()
    leader: list[str | None] = [leadership.leader_url()]
    forwarder = Forwarder(lambda: leader[0], forward_proof(store.secrets), leadership.url, pin)

    async def health(request: web.Request) -> web.Response:
        body = standby_health(leadership, started)
        return web.Response(body=dumps(body), content_type="application/json")

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_get("/health", health)
    app.router.add_route("*", "/{tail:.*}", forwarder.handle)
    # A client that goes away cancels its forward (and so the leader's hold of its poll).
    runner = web.AppRunner(
        app, access_log=None, shutdown_timeout=HANDOVER_TIMEOUT, handler_cancellation=True
    )
    await runner.setup()
    # A copy of the socket: stopping this site closes its copy, and the leader's serves the
    # original, so connections queue in the same backlog while the roles change.
    site = web.SockSite(runner, sock.dup(), ssl_context=ssl_context)
    await site.start()
    log.info("standing by: requests go to the leader, %s", leader[0] or "(none yet)")
    listening()
    last_beat = 0.0
    try:
        while not stopping.is_set():
            if leadership.try_lead():
                return True
            now = time.monotonic()
            if now - last_beat >= HEARTBEAT_EVERY:
                leadership.heartbeat()
                last_beat = now
            known = leadership.leader_url()
            if known != leader[0]:
                log.info("the leader is now %s", known)
                leader[0] = known
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stopping.wait(), TRY_EVERY)
        return False
    finally:
        await runner.cleanup()
        await forwarder.close()

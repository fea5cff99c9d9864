"""`manager serve` on a database several managers share (PostgreSQL, DESIGN §13).

The listening socket is bound first, so the manager knows the URL it tells the others; then it
stands by until it leads (standby.py), and serves the fleet once it does. While it leads, a
watchdog checks the leadership every second and says it is alive (leadership.py): a leader that
lost the database session that held the lock stops (exit status 3), as kube-controller-manager
does, for its service manager to start it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

from syncopate.errors import ConfigError
from syncopate.manager.leadership import HEARTBEAT_EVERY, TRY_EVERY, Leadership

log = logging.getLogger("syncopate.manager")

LOST_LEAD_EXIT = 3


def listening_socket(host: str, port: int, backlog: int) -> socket.socket:
    """A TCP socket listening on host:port (port 0: a free one), for every role it serves."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=backlog)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; is another manager "
            "running? pick another --port (0 picks a free one)"
        ) from None


async def watch_leadership(leadership: Leadership, stopping: asyncio.Event) -> int | None:
    """While leading: say so every few seconds; set `stopping` and return the exit status if
    the leadership is lost."""
    beats = 0
    while not stopping.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stopping.wait(), TRY_EVERY)
        if not leadership.check():
            log.error(
                "lost the database session that held the leadership: stopping (another "
                "manager leads, or will; start this one again to stand by)"
            )
            stopping.set()
            return LOST_LEAD_EXIT
        beats += 1
        if beats * TRY_EVERY >= HEARTBEAT_EVERY:
            leadership.heartbeat()
            beats = 0
    return None

"""Held long polls: a node's /node-status request waits here until its assignments change.

Each node has a version, bumped whenever something it must hear about changes, and the version
its last answer carried; a poll that arrives after a change it has not been sent returns at once,
so a change between two polls is never missed. The cluster decides when to wake a node (after
the write that changed it commits, see `Cluster.wake`); this module only keeps the waiters.
"""

from __future__ import annotations

import asyncio


class LongPoll:
    """The held polls and each node's change counters."""

    def __init__(self) -> None:
        self.versions: dict[str, int] = {}  # node -> changes made for it
        self.sent_versions: dict[str, int] = {}  # node -> the version its last answer carried
        self.waiters: dict[str, list[asyncio.Future[None]]] = {}

    def wake(self, node_name: str) -> None:
        """Count a change for this node and answer its held polls now."""
        self.versions[node_name] = self.versions.get(node_name, 0) + 1
        for waiter in self.waiters.pop(node_name, []):
            if not waiter.done():
                waiter.set_result(None)

    def sent(self, node_name: str) -> None:
        """The node is being sent its assignments as they are now."""
        self.sent_versions[node_name] = self.versions.get(node_name, 0)

    def held(self) -> int:
        """How many long polls are being held now."""
        return sum(len(waiters) for waiters in self.waiters.values())

    def wake_all(self) -> None:
        """Answer every held long poll now (the manager is shutting down)."""
        for name in list(self.waiters):
            for waiter in self.waiters.pop(name, []):
                if not waiter.done():
                    waiter.set_result(None)

    async def wait_for_change(self, node_name: str, timeout: float) -> None:
        """Return when this node's assignments change, or after `timeout` seconds.

        Returns at once when something changed since the last answer this node was sent, so
        a change between two polls is never missed.
        """
        if self.versions.get(node_name, 0) != self.sent_versions.get(node_name, 0):
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.setdefault(node_name, []).append(waiter)
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(waiter)
        except TimeoutError:
            pass
        finally:
            waiters = self.waiters.get(node_name)
            if waiters and waiter in waiters:
                waiters.remove(waiter)

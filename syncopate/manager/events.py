"""The /events feed: changes are marked as they happen and sent in batches, once per tick.

A subscriber gets a snapshot first, then `changes` messages naming what changed since the last
one (a removed project or node maps to null). A subscriber that cannot keep up is sent a fresh
snapshot instead of a backlog.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

Snapshot = Callable[[], dict[str, Any]]
Lookup = Callable[[str, str], dict[str, Any] | None]

QUEUE_LIMIT = 64
log = logging.getLogger("syncopate.manager")


class Subscriber:
    """One /events connection's outgoing queue."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_LIMIT)
        self.needs_snapshot = False

    def offer(self, message: dict[str, Any]) -> None:
        if self.needs_snapshot:
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            # Too far behind: drop the backlog and resynchronise with a snapshot.
            while not self.queue.empty():
                self.queue.get_nowait()
            self.needs_snapshot = True


class EventHub:
    """Collects changed names and fans them out to subscribers every `interval` seconds."""

    def __init__(self, snapshot: Snapshot, lookup: Lookup, interval: float = 0.1) -> None:
        self._snapshot = snapshot
        self._lookup = lookup
        self.interval = interval
        self.subscribers: set[Subscriber] = set()
        self._dirty: dict[str, set[str]] = {"project": set(), "node": set()}
        self._wake = asyncio.Event()

    def mark(self, kind: str, name: str) -> None:
        """Note that a project or node changed; cheap, and free when nobody listens."""
        if self.subscribers:
            self._dirty[kind].add(name)
            self._wake.set()

    def subscribe(self) -> Subscriber:
        subscriber = Subscriber()
        subscriber.queue.put_nowait(self.snapshot_message())
        self.subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)

    def snapshot_message(self) -> dict[str, Any]:
        return {"type": "snapshot", **self._snapshot()}

    def flush(self) -> None:
        """Send one `changes` message with everything marked since the last flush."""
        projects, nodes = self._dirty["project"], self._dirty["node"]
        self._dirty = {"project": set(), "node": set()}
        if not projects and not nodes:
            return
        message = {
            "type": "changes",
            "projects": {name: self._lookup("project", name) for name in sorted(projects)},
            "nodes": {name: self._lookup("node", name) for name in sorted(nodes)},
        }
        for subscriber in list(self.subscribers):
            if subscriber.needs_snapshot and subscriber.queue.empty():
                subscriber.needs_snapshot = False
                subscriber.offer(self.snapshot_message())
            else:
                subscriber.offer(message)

    async def run(self) -> None:
        """Flush batches until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self.interval)
            try:
                self.flush()
            except Exception:
                log.exception("could not send /events changes")

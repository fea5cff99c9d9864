"""The /events feed: changes are marked as they happen and sent in batches, once per tick.

A subscriber gets a snapshot first (projects, nodes, and the newest and open commands), then
`changes` messages naming what changed since the last one: projects and nodes by name, commands
by id (a removed project or node maps to null). A subscriber that follows projects' output also
gets, per project and batch, `{"type": "logs", "project": P, "seq": N, "lines": [...],
"times": [...]}` (`seq` numbers the first line and `times` says when each was produced, as in
the `logs` answer); `*` follows every project's output. A subscriber that cannot keep up is sent a
fresh snapshot instead of a backlog (and misses the lines that were in it).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from syncopate.manager.logbook import iso

Snapshot = Callable[[], dict[str, Any]]
Lookup = Callable[[str, str], dict[str, Any] | None]

QUEUE_LIMIT = 64
LINES_PER_BATCH = 1000  # of one project; older ones in the same batch are dropped
EVERY_PROJECT = "*"  # in a subscriber's `logs`: it follows the output of every project
log = logging.getLogger("syncopate.manager")


class Subscriber:
    """One /events connection's outgoing queue."""

    def __init__(self, logs: Iterable[str] = ()) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_LIMIT)
        self.needs_snapshot = False
        self.logs = frozenset(logs)
        """The projects whose new output lines this subscriber gets (EVERY_PROJECT: all)."""

    def follows(self, project: str) -> bool:
        return project in self.logs or EVERY_PROJECT in self.logs

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


@dataclass
class _Lines:
    seq: int
    lines: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)


class EventHub:
    """Collects changed names and fans them out to subscribers every `interval` seconds."""

    def __init__(self, snapshot: Snapshot, lookup: Lookup, interval: float = 0.1) -> None:
        self._snapshot = snapshot
        self._lookup = lookup
        self.interval = interval
        self.subscribers: set[Subscriber] = set()
        self._dirty: dict[str, set[str]] = {"project": set(), "node": set(), "command": set()}
        self._followed: Counter[str] = Counter()  # project -> subscribers following its output
        self._lines: dict[str, _Lines] = {}
        self._wake = asyncio.Event()

    def mark(self, kind: str, name: str) -> None:
        """Note that a project or node changed; cheap, and free when nobody listens."""
        if self.subscribers:
            self._dirty[kind].add(name)
            self._wake.set()

    def add_lines(self, project: str, seq: int, lines: list[str], times: list[float]) -> None:
        """New output of a project (`seq` numbers its first line, `times` say when each was
        produced); free when nobody follows it."""
        if not self._followed[project] and not self._followed[EVERY_PROJECT]:
            return
        pending = self._lines.get(project)
        if pending is None or pending.seq + len(pending.lines) != seq:
            pending = self._lines[project] = _Lines(seq)
        pending.lines.extend(lines)
        pending.times.extend(times)
        extra = len(pending.lines) - LINES_PER_BATCH
        if extra > 0:
            del pending.lines[:extra]
            del pending.times[:extra]
            pending.seq += extra
        self._wake.set()

    def subscribe(self, logs: Iterable[str] = ()) -> Subscriber:
        """A new subscriber (following the output of the projects in `logs`)."""
        subscriber = Subscriber(logs)
        subscriber.queue.put_nowait(self.snapshot_message())
        self.subscribers.add(subscriber)
        self._followed.update(subscriber.logs)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber in self.subscribers:
            self.subscribers.discard(subscriber)
            self._followed.subtract(subscriber.logs)
            for project in subscriber.logs:
                if self._followed[project] <= 0:
                    del self._followed[project]

    def snapshot_message(self) -> dict[str, Any]:
        return {"type": "snapshot", **self._snapshot()}

    def flush(self) -> None:
        """Send one `changes` message with everything marked since the last flush."""
        projects, nodes = self._dirty["project"], self._dirty["node"]
        commands = self._dirty["command"]
        self._dirty = {"project": set(), "node": set(), "command": set()}
        lines, self._lines = self._lines, {}
        # Lines first: then whoever sees a change has also seen the lines that came before it.
        for project in sorted(lines):
            batch = lines[project]
            output = {
                "type": "logs",
                "project": project,
                "seq": batch.seq,
                "lines": batch.lines,
                "times": [iso(time) for time in batch.times],
            }
            for subscriber in list(self.subscribers):
                if subscriber.follows(project):
                    subscriber.offer(output)
        if not projects and not nodes and not commands:
            return
        message = {
            "type": "changes",
            "projects": {name: self._lookup("project", name) for name in sorted(projects)},
            "nodes": {name: self._lookup("node", name) for name in sorted(nodes)},
            "commands": {key: self._lookup("command", key) for key in sorted(commands, key=int)},
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

"""The command benchmark's view of commands: the /events feed's latest info of each command,
and where a responded command's time went, from the manager's stamps."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from harness.stats import spread

from syncopate.client import ManagerClient


def stamp(text: str) -> float:
    """Seconds since the epoch of a manager stamp (ISO 8601 UTC, milliseconds, `Z`)."""
    return datetime.fromisoformat(text).timestamp()


# --- watching commands on /events -----------------------------------------------------------------
class Feed:
    """The latest info of every command the /events feed mentioned, by id."""

    def __init__(self, client: ManagerClient) -> None:
        self.client = client
        self.commands: dict[int, dict[str, Any]] = {}
        self.changed = asyncio.Event()
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self._follow())
        await asyncio.wait_for(self.ready.wait(), 30)

    async def _follow(self) -> None:
        async for message in self.client.events():
            for key, info in (message.get("commands") or {}).items():
                if info is not None:
                    self.commands[int(key)] = info
            self.ready.set()
            self.changed.set()

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task

    def pending(self, ids: set[int]) -> set[int]:
        """The ids not responded yet (nor in any state after it)."""
        return {i for i in ids if (self.commands.get(i) or {}).get("responded") is None}

    async def wait_responded(self, ids: set[int], deadline: float) -> set[int]:
        """Wait until every id is responded or the monotonic `deadline`; the ids still open."""
        while True:
            if self.task is not None and self.task.done():
                raise RuntimeError(f"the /events feed ended: {self.task.exception()!r}")
            left = self.pending(ids)
            if not left or time.monotonic() >= deadline:
                return left
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    await self.changed.wait()


# --- where a command's time goes ------------------------------------------------------------------
@dataclass
class Breakdown:
    """Responded commands' times, in seconds, from the manager's stamps and the agent's duration.

    `trips` responded - created; `pickups` collected - created (the send's commit, the long
    poll woken and answered); `durations` the agent's run of the program (scratch dir made,
    process started, run, output drained, group checked); `around` responded - collected -
    duration (the poll answer's way to the agent, the scratch dir removed, the POST back).
    """

    trips: list[float] = field(default_factory=list)
    pickups: list[float] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)
    around: list[float] = field(default_factory=list)
    non_zero: int = 0

    def add(self, info: dict[str, Any]) -> None:
        created, responded = stamp(info["created"]), stamp(info["responded"])
        collected = stamp(info["collected"])
        self.trips.append(responded - created)
        self.pickups.append(collected - created)
        if info.get("duration") is not None:
            duration = float(info["duration"])
            self.durations.append(duration)
            self.around.append(responded - collected - duration)
        if info.get("exit-code") != 0:
            self.non_zero += 1

    def print(self, indent: str) -> None:
        print(f"{indent}responded - created            {spread(self.trips)}")
        print(f"{indent}  collected - created          {spread(self.pickups)}")
        print(f"{indent}  agent's duration             {spread(self.durations)}")
        print(f"{indent}  rest (to agent, back)        {spread(self.around)}")

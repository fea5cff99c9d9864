"""The agent's reports on its projects: on its long poll, or by /node-update.

Every interval each project's report reaches the manager: on the poll when the manager takes
reports there (poll_reports.py), else by one /node-update each (the interval round). A change
that must be known now (a crash, a stop, a move's stop: `report_soon`) goes at once by
/node-update, since the poll is held. A report the manager refuses, either way, stops this copy
of the project: it is not this node's any more (moved, removed, or reset behind its back).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from syncopate.errors import (
    Conflict,
    ConnectionFailed,
    Forbidden,
    NotFound,
    ProtocolError,
    RequestError,
    Unauthorized,
    request_error_for,
)
from syncopate.node.poll_reports import PollReports
from syncopate.node.project import Local
from syncopate.states import ProjectStatus

if TYPE_CHECKING:
    from syncopate.node.agent import Agent

log = logging.getLogger("syncopate.node")

# What a refused report's status means: not ours any more, so this copy stops.
NOT_OURS = (Forbidden, NotFound, Conflict)


class Reporter:
    """Sends an agent's reports; `report_soon` wakes the round at once."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.polls = PollReports(agent.clock, agent.settings.interval)
        self._now = asyncio.Event()
        self._soon: set[str | None] = set()  # projects whose report must go now (None: all)

    def report_soon(self, project: str | None = None) -> None:
        self._soon.add(project)
        self._now.set()

    async def round_loop(self) -> None:
        """Every interval, report by /node-update each project whose report did not go on a
        poll lately; at once, each project named by `report_soon` (every one for None)."""
        agent = self.agent
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that
            # arrives as the event is set, and the agent's shutdown would wait forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(agent.settings.interval):
                    await self._now.wait()
            self._now.clear()
            await asyncio.sleep(0.02)  # coalesce a burst of changes into one round
            soon, self._soon = self._soon, set()
            for local in list(agent.local.values()):
                if local.status is ProjectStatus.PENDING:  # nothing done yet, nothing to say
                    continue
                if agent.local.get(local.name) is not local:
                    continue  # refused (on a poll, say) while this round sent the others
                now = None in soon or local.name in soon
                if now or self.polls.due_by_update(local.name):
                    await self.send_report(local)

    async def send_report(self, local: Local) -> None:
        """Report one project by /node-update; a refusal stops this copy of it."""
        agent = self.agent
        if agent.rejoin.refused:
            return  # the manager refused this node's token: see rejoin.py
        runner = agent._runner(local.name)
        await runner.measure_disk(local)
        sent = agent.clock()
        report = runner.build_report(local)
        try:
            await agent.client.node_update(agent.name, agent.token, report)
            agent.last_contact = max(agent.last_contact, sent)
            local.acknowledged(report)
        except NOT_OURS as exc:
            self.refused(local, exc)
        except Unauthorized:
            agent.rejoin.refused = True  # the poll finds out and joins again (rejoin.py)
        except (ConnectionFailed, ProtocolError, RequestError) as exc:
            log.debug("report for %s failed: %s", local.name, exc)

    def refused(self, local: Local, exc: RequestError) -> None:
        """The manager refused `local`'s report as not this node's: stop this copy."""
        agent = self.agent
        log.warning("%s: the manager refused the report (%s); stopping it", local.name, exc)
        if agent.local.get(local.name) is local:
            del agent.local[local.name]
            agent._retired[local.name] = local
            agent._runner(local.name).retire(local)

    # on the poll ------------------------------------------------------------------------------
    async def for_poll(self) -> list[dict[str, Any]]:
        """The reports to send on the next poll (none to a manager that does not take them)."""
        agent = self.agent
        if agent.rejoin.refused or self.polls.taken is False:
            self.polls.load([])
            return []
        candidates = []
        try:
            for local in list(agent.local.values()):
                if local.status is ProjectStatus.PENDING:
                    continue
                runner = agent._runner(local.name)
                await runner.measure_disk(local)
                candidates.append((local, runner.build_report(local)))
        except Exception:
            # Nothing may stop the poll (the lease hangs on it): these go by /node-update.
            log.exception("could not build the reports for the poll; sending it without them")
            candidates = []
        return self.polls.load(candidates)

    def poll_answered(self, answer: dict[str, Any], sent: float) -> None:
        """The poll's answer: acknowledge what it carried; stop the copies it refused as not
        this node's (a refusal for another reason is logged, as a failed /node-update is)."""
        for local, refusal in self.polls.answered(answer, sent):
            exc = request_error_for(refusal.status, refusal.reason, code=refusal.code)
            if isinstance(exc, NOT_OURS):
                self.refused(local, exc)
            else:
                log.warning("%s: the manager refused the report (%s)", local.name, exc)

    def poll_failed(self) -> None:
        self.polls.failed()

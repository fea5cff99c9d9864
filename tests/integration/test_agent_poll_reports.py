"""A real agent's reports ride on its long poll (issue 18): an idle node costs the manager one
request per report interval; a refusal on the poll stops that copy only; an older manager,
which ignores `reports`, is noticed and reported to by /node-update."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import pytest

from syncopate.manager.routes import nodes
from tests.helpers import RunningManager, wait_for
from tests.integration.test_agent import PY, Fleet, alive, counter_repo


async def answered(manager: RunningManager) -> dict[str, int]:
    """The /node-update and /node-status requests the manager answered, by route and status."""
    async with manager.client() as ctl:
        text = await ctl.metrics()
    found = re.findall(
        r'syncopate_http_requests_total\{route="/node-(update|status)",status="(\d+)"\} (\d+)', text
    )
    return {f"{route} {status}": int(count) for route, status, count in found}


def updates(counts: dict[str, int]) -> int:
    return sum(n for key, n in counts.items() if key.startswith("update "))


async def quiet_window(manager: RunningManager, polls: int) -> tuple[int, int]:
    """Wait for `polls` polls in a row with no /node-update between them (an idle node); the
    /node-update count then and the polls seen. Starts again after any /node-update (the last
    start-up reports)."""
    start = await answered(manager)

    async def quiet() -> tuple[int, int] | None:
        nonlocal start
        now = await answered(manager)
        if updates(now) != updates(start):
            start = now
            return None
        seen = now.get("status 200", 0) - start.get("status 200", 0)
        return (updates(now), seen) if seen >= polls else None

    return await wait_for(quiet, timeout=30, what=f"{polls} polls without a /node-update")


async def test_an_idle_agents_reports_ride_on_its_polls(fleet: Fleet) -> None:
    repo = counter_repo(fleet.tmp)
    agent = await fleet.start_agent("pi-1")
    async with fleet.manager.client() as ctl:
        await ctl.add("counter", repo.url, {"count": 0}, command=f"{PY} counter.py")
        first = await fleet.until("counter", lambda p: p["status"] == "running", "counter to run")
        assert agent.reporter.polls.taken is True
        # An idle node's poll is held about one report interval.
        assert agent.reporter.polls.wait(agent.settings.poll_wait) == agent.settings.interval
        counted = (await fleet.project("counter"))["persistent-variables"]["count"]
        lines = len((await ctl.logs("counter"))["lines"])
        # Over several intervals, not one /node-update: the polls carried the reports...
        await quiet_window(fleet.manager, polls=8)
        # ... and the manager heard the counter count on and print more.
        now = await fleet.project("counter")
        assert now["persistent-variables"]["count"] > counted
        assert now["pid"] == first["pid"] and now["status"] == "running"
        assert len((await ctl.logs("counter"))["lines"]) > lines
    # Leaving, its final reports still go by /node-update (nothing polls any more).
    before = updates(await answered(fleet.manager))
    await fleet.stop_agent("pi-1")
    assert updates(await answered(fleet.manager)) == before + 1


async def test_a_report_refused_on_the_poll_stops_that_copy_only(fleet: Fleet) -> None:
    # A reset behind the agent's back: its poll's report of the old epoch is refused (409),
    # while the other project's, on the same poll, is taken. Holding the polls' answers from
    # reconcile keeps the agent from hearing of the reset any other way.
    first_repo, other_repo = counter_repo(fleet.tmp), counter_repo(fleet.tmp, "other")
    agent = await fleet.start_agent("pi-1")
    async with fleet.manager.client() as ctl:
        await ctl.add("counter", first_repo.url, {"count": 0}, command=f"{PY} counter.py")
        await ctl.add("other", other_repo.url, {"count": 0}, command=f"{PY} counter.py")
        for name in ("counter", "other"):
            await fleet.until(name, lambda p: p["status"] == "running", f"{name} to run")
        # Settled: the start-up's reports sent, the rest ride on the polls.
        await quiet_window(fleet.manager, polls=3)
        first = await fleet.project("counter")
        held: list[dict[str, Any]] = []
        agent.reconcile = held.append  # type: ignore[method-assign,assignment]
        await ctl.reset(["counter"])
        await wait_for(
            lambda: asyncio.sleep(0, "counter" not in agent.local),
            what="the refused copy to be stopped",
        )
        await wait_for(
            lambda: asyncio.sleep(0, not alive(first["pid"])), what="the refused copy to end"
        )
        counts = await answered(fleet.manager)
        assert not any(key.startswith("update 4") for key in counts), counts  # on the poll
        # The other project is still this node's, and its reports are still taken.
        counted = (await fleet.project("other"))["persistent-variables"]["count"]
        await fleet.until(
            "other",
            lambda p: p["persistent-variables"]["count"] > counted,
            "the other project's next report",
        )
        assert "other" in agent.local
        del agent.reconcile  # the agent's own method again
        agent.reconcile(held[-1])
    await fleet.until(
        "counter",
        lambda p: p["status"] == "running" and p["epoch"] > first["epoch"],
        "counter to run again under the new epoch",
    )


@pytest.fixture
def older_manager(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """The manager as one from before issue 18 answers: `reports` ignored (it does not know
    the field: its models ignore unknown fields), no `held` or `refused` in the answer."""
    monkeypatch.setattr(nodes, "_take_reports", lambda state, node, poll: ({}, False))
    monkeypatch.setattr(nodes, "_poll_fields", lambda refused, held: {})
    yield monkeypatch


async def test_an_older_manager_is_noticed_and_reported_to_by_update(
    fleet: Fleet, older_manager: pytest.MonkeyPatch
) -> None:
    repo = counter_repo(fleet.tmp)
    agent = await fleet.start_agent("pi-1")
    async with fleet.manager.client() as ctl:
        await ctl.add("counter", repo.url, {"count": 0}, command=f"{PY} counter.py")
        await fleet.until("counter", lambda p: p["status"] == "running", "counter to run")
        polls = agent.reporter.polls
        assert polls.taken is False
        assert polls.wait(agent.settings.poll_wait) == agent.settings.poll_wait
        # Its reports go by /node-update, each interval.
        before = updates(await answered(fleet.manager))
        counted = (await fleet.project("counter"))["persistent-variables"]["count"]
        await fleet.until(
            "counter",
            lambda p: p["persistent-variables"]["count"] > counted,
            "the counter's next report",
        )
        assert updates(await answered(fleet.manager)) > before
        # The manager upgraded in place: its next answer says it takes reports on the poll.
        older_manager.undo()
        await ctl.set_project("counter", env={"WAKE": "1"})  # ends the agent's long poll now
        await wait_for(
            lambda: asyncio.sleep(0, polls.taken is True), what="the agent to notice the upgrade"
        )

"""Reports riding on the poll (issue 18), on a real manager: each is taken exactly as
/node-update takes it, before the hold, and one refused is refused alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from syncopate.errors import NOT_THIS_NODES, URL_MISMATCH, RequestError, Unavailable
from syncopate.protocol import MAX_POLL_REPORTS
from tests.helpers import RunningManager, SimNode, running_manager, wait_for
from tests.integration.test_store_faults import agent, inject

ALPHA = "https://example.com/alpha.git"
BETA = "https://example.com/beta.git"
GAMMA = "https://example.com/gamma.git"


@pytest.fixture
async def manager(tmp_path: Path) -> AsyncIterator[RunningManager]:
    async with running_manager(tmp_path, node_timeout=30.0) as running:
        yield running


def report(
    project: str, url: str, status: str = "running", more: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {"project-name": project, "project-url": url, "status": status, **(more or {})}


def lines(stream: str, seq: int, *text: str) -> dict[str, Any]:
    return {"log-stream": stream, "log-seq": seq, "log-lines": list(text)}


async def poll(node: SimNode, reports: list[dict[str, Any]], wait: float = 0) -> dict[str, Any]:
    return await node.client.node_status(node.name, node.token, wait=wait, reports=reports)


async def two_nodes(manager: RunningManager) -> tuple[SimNode, SimNode]:
    """pi-1 runs alpha and beta, pi-2 runs gamma (by labels)."""
    pi1 = await agent(manager.url, "pi-1")
    pi2 = await agent(manager.url, "pi-2")
    async with manager.client() as ctl:
        await ctl.controller("node-label", node="pi-1", labels={"side": "one"})
        await ctl.controller("node-label", node="pi-2", labels={"side": "two"})
        await ctl.add("alpha", ALPHA, {"count": 0}, on=["side=one"])
        await ctl.add("beta", BETA, on=["side=one"])
        await ctl.add("gamma", GAMMA, on=["side=two"])
        placed = {name: p["node"] for name, p in (await ctl.status()).items()}
    assert placed == {"alpha": "pi-1", "beta": "pi-1", "gamma": "pi-2"}, placed
    await pi1.poll()
    await pi2.poll()
    return pi1, pi2


async def projects(manager: RunningManager) -> dict[str, Any]:
    async with manager.client() as ctl:
        return await ctl.status()


async def test_each_report_is_taken_or_refused_alone(manager: RunningManager) -> None:
    pi1, pi2 = await two_nodes(manager)
    try:
        answer = await poll(
            pi1,
            [
                report("alpha", ALPHA, more={"persistent-variables": {"count": 7}, "pid": 4242}),
                report("gamma", GAMMA),  # pi-2's
                report("beta", "https://example.com/other.git"),  # not beta's URL
                report("nothing", ALPHA),  # no such project
                report("alpha", ALPHA, "no-such-status"),
            ],
        )
        refused = answer["refused"]
        assert refused["gamma"]["status"] == 403
        assert refused["gamma"]["code"] == NOT_THIS_NODES
        assert "not assigned to node 'pi-1'" in refused["gamma"]["reason"]
        assert (refused["beta"]["status"], refused["beta"]["code"]) == (409, URL_MISMATCH)
        assert (refused["nothing"]["status"], refused["nothing"]["code"]) == (404, NOT_THIS_NODES)
        # The same project twice: the first was taken, the second (a bad status) refused.
        assert refused["alpha"]["status"] == 400 and "no-such-status" in refused["alpha"]["reason"]
        assert answer["held"] == 0.0
        now = await projects(manager)
        assert now["alpha"]["status"] == "running"
        assert now["alpha"]["persistent-variables"] == {"count": 7}
        assert now["alpha"]["pid"] == 4242
        assert now["gamma"]["status"] != "running"  # pi-1's word on it was not taken
        # Each refusal is what /node-update answers for the same report.
        for name, body in (
            ("gamma", report("gamma", GAMMA)),
            ("nothing", report("nothing", ALPHA)),
        ):
            with pytest.raises(RequestError) as refused_update:
                await pi1.client.node_update(pi1.name, pi1.token, body)
            assert refused_update.value.status == refused[name]["status"]
            assert refused_update.value.code == refused[name]["code"]
    finally:
        await pi1.close()
        await pi2.close()


async def test_variables_over_the_limit_refuse_only_their_report(manager: RunningManager) -> None:
    pi1, pi2 = await two_nodes(manager)
    try:
        huge = {"blob": "x" * 70_000}
        answer = await poll(
            pi1,
            [
                report("alpha", ALPHA, more={"persistent-variables": huge}),
                report("beta", BETA, more={"persistent-variables": {"n": 2}}),
            ],
        )
        assert list(answer["refused"]) == ["alpha"]
        assert answer["refused"]["alpha"]["status"] == 413
        now = await projects(manager)
        assert now["beta"]["persistent-variables"] == {"n": 2}
        assert now["alpha"]["persistent-variables"] == {"count": 0}
    finally:
        await pi1.close()
        await pi2.close()


async def test_reports_are_taken_before_the_hold_and_the_hold_is_told(
    manager: RunningManager,
) -> None:
    pi1, pi2 = await two_nodes(manager)
    try:
        held = asyncio.create_task(poll(pi1, [report("alpha", ALPHA, "crashed")], wait=1.0))

        async def crashed() -> bool:
            return bool((await projects(manager))["alpha"]["status"] == "crashed")

        await wait_for(crashed, what="the held poll's report to be taken")
        assert not held.done()  # taken while the poll is held
        answer = await held
        assert answer["refused"] == {}
        assert 0.9 <= answer["held"] <= 5.0
    finally:
        await pi1.close()
        await pi2.close()


async def test_overlapping_output_from_a_held_poll_and_an_update_is_kept_once(
    manager: RunningManager,
) -> None:
    pi1, pi2 = await two_nodes(manager)
    try:
        # The poll's report (lines 0-2) is taken, then held; before its answer the node sends
        # a /node-update from the same unacknowledged cursor (lines 0-4).
        held = asyncio.create_task(
            poll(pi1, [report("alpha", ALPHA, more=lines("s1", 0, "l0", "l1", "l2"))], wait=1.0)
        )

        async def taken() -> bool:
            return len((await ctl_logs(manager, "alpha"))["lines"]) == 3

        await wait_for(taken, what="the poll's lines")
        await pi1.report("alpha", **lines("s1", 0, "l0", "l1", "l2", "l3", "l4"))
        await held
        # The other way round: an update's lines first, then a poll resending some of them.
        await pi1.report("alpha", **lines("s1", 5, "l5", "l6"))
        await poll(pi1, [report("alpha", ALPHA, more=lines("s1", 3, "l3", "l4", "l5", "l6", "l7"))])
        kept = await ctl_logs(manager, "alpha")
        assert kept["lines"] == [f"l{n}" for n in range(8)]
    finally:
        await pi1.close()
        await pi2.close()


@pytest.mark.parametrize("wait", [0, 2.0])
async def test_a_refused_write_fails_the_whole_poll(manager: RunningManager, wait: float) -> None:
    """Held or not: a poll whose reports the store refused (at the group commit's COMMIT, just
    after they were taken) is refused, never answered as if they were taken."""
    pi1, pi2 = await two_nodes(manager)
    try:
        before = await projects(manager)
        disk = inject(manager)
        disk.full = True
        both = [report("beta", BETA, "crashed"), report("alpha", ALPHA, "crashed")]
        with pytest.raises(Unavailable):
            await poll(pi1, both, wait=wait)
        assert await projects(manager) == before  # nothing taken: the node sends them again
        disk.full = False
        answer = await poll(
            pi1, [report("beta", BETA, "crashed"), report("alpha", ALPHA, "crashed")]
        )
        assert answer["refused"] == {}
        now = await projects(manager)
        assert (now["alpha"]["status"], now["beta"]["status"]) == ("crashed", "crashed")
    finally:
        await pi1.close()
        await pi2.close()


async def test_too_many_reports_on_one_poll_are_refused(manager: RunningManager) -> None:
    pi1, pi2 = await two_nodes(manager)
    try:
        with pytest.raises(RequestError) as refused:
            await poll(pi1, [report("alpha", ALPHA)] * (MAX_POLL_REPORTS + 1))
        assert refused.value.status == 400
    finally:
        await pi1.close()
        await pi2.close()


async def ctl_logs(manager: RunningManager, project: str) -> dict[str, Any]:
    async with manager.client() as ctl:
        return await ctl.logs(project)

"""Projects' output on the manager: shipped by real agents, kept (the last 1,000 lines, in
SQLite, without duplicates), served by the `logs` action and followed over /events?logs=."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from syncopate.client import ManagerClient
from syncopate.errors import InvalidRequest, NotFound
from tests.gitrepos import Repo
from tests.helpers import PASSWORD, RunningManager, SimNode, running_manager, wait_for
from tests.integration.test_agent import Fleet
from tests.procs import manager_process

PY = sys.executable
ALPHA_URL = "https://example.com/alpha.git"
BETA_URL = "https://example.com/beta.git"
TALKER = """\
import os
import time

node = os.environ["SYNCOPATE_NODE"]
for i in range({count}):
    print(node, "line", i, flush=True)
while True:
    time.sleep(1)
"""
TICKER = """\
import itertools
import time

for i in itertools.count():
    print("tick", i, flush=True)
    time.sleep(0.05)
"""


def output(stream: str, seq: int, lines: list[str]) -> dict[str, Any]:
    """The log fields of a report."""
    return {"log-stream": stream, "log-seq": seq, "log-lines": lines}


def stored_lines(manager: RunningManager, project: str) -> int:
    """How many output lines of `project` the database holds (read as another process would)."""
    [(count,)] = manager.db_query("SELECT COUNT(*) FROM log_lines WHERE project = ?", (project,))
    return int(count)


async def more_reports(manager: RunningManager, count: int) -> None:
    """Wait until the manager answered `count` more requests that carry reports: /node-update,
    and /node-status (the agent's reports ride on its polls: issue 18)."""
    target = await updates_answered(manager) + count

    async def enough() -> bool:
        return await updates_answered(manager) >= target

    await wait_for(enough, what=f"{count} more reports")


async def updates_answered(manager: RunningManager) -> int:
    """How many /node-update and /node-status requests the manager answered with 200."""
    async with manager.client() as ctl:
        text = await ctl.metrics()
    found = re.findall(
        r'syncopate_http_requests_total\{route="/node-(?:update|status)",status="200"\} (\d+)',
        text,
    )
    return sum(int(count) for count in found)


async def placed_node(manager: RunningManager, *projects: str) -> SimNode:
    """A simulated node that joined before `projects` were added, so it runs them all."""
    node = await SimNode.join(manager.url, "pi-1")
    async with manager.client() as ctl:
        for name in projects:
            await ctl.add(name, f"https://example.com/{name}.git")
    seen = await node.poll()
    assert set(seen) == set(projects)
    return node


# real agents --------------------------------------------------------------------------------
async def test_a_projects_output_reaches_the_manager_once_and_in_order(fleet: Fleet) -> None:
    repo = Repo.create(fleet.tmp / "repos" / "talker", {"talk.py": TALKER.format(count=50)})
    agent = await fleet.start_agent("pi-1")
    async with fleet.manager.client() as ctl:
        await ctl.add("talker", repo.url, command=f"{PY} talk.py")
        expected = [f"pi-1 line {i}" for i in range(50)]

        async def all_lines() -> dict[str, Any] | None:
            answer = await ctl.logs("talker", lines=1000)
            return answer if answer["lines"] == expected else None

        answer = await wait_for(all_lines, timeout=20, what="the talker's 50 lines")
        assert answer["project"] == "talker"
        assert answer["node"] == "pi-1"
        assert answer["seq"] == 0
        last = await ctl.logs("talker", lines=10)
        assert last["lines"] == expected[-10:]
        assert last["seq"] == 40

        # The agent hears the manager took them (with the answer to the poll or report that
        # carried them: after the poll's hold, and after the group commit, group_commit.py),
        # and later reports send nothing again.
        async def acknowledged() -> bool:
            return agent.local["talker"].log_next == 50

        await wait_for(acknowledged, what="the agent to hear its lines were taken")
        await more_reports(fleet.manager, 3)
        assert (await ctl.logs("talker", lines=1000))["lines"] == expected
    assert stored_lines(fleet.manager, "talker") == 50


async def test_output_follows_a_project_that_moves(fleet: Fleet) -> None:
    """pi-1 leaves: its final report carries the last lines; pi-2's lines come after them."""
    repo = Repo.create(fleet.tmp / "repos" / "talker", {"talk.py": TALKER.format(count=20)})
    await fleet.start_agent("pi-1")
    async with fleet.manager.client() as ctl:
        await ctl.add("talker", repo.url, command=f"{PY} talk.py")
        on_pi1 = [f"pi-1 line {i}" for i in range(20)]

        async def printed_on_pi1() -> bool:
            return bool((await ctl.logs("talker"))["lines"] == on_pi1)

        await wait_for(printed_on_pi1, timeout=20, what="the talker's lines from pi-1")
        await fleet.start_agent("pi-2")
        await fleet.stop_agent("pi-1")
        on_pi2 = [f"pi-2 line {i}" for i in range(20)]
        expected = [
            *on_pi1,
            "[syncopate] stopped",  # pi-1's last report, before it leaves
            "[syncopate] moved to pi-2: node pi-1 left",  # the manager's decision
            "[syncopate] now on node pi-2",  # pi-2's first lines
            *on_pi2,
        ]

        async def printed_on_pi2() -> dict[str, Any] | None:
            answer = await ctl.logs("talker", lines=1000)
            return answer if answer["lines"][-1:] == on_pi2[-1:] else None

        answer = await wait_for(printed_on_pi2, timeout=20, what="the talker's lines from pi-2")
        assert answer["lines"] == expected
        assert answer["node"] == "pi-2"


async def test_wide_output_is_spread_over_reports_the_manager_accepts(fleet: Fleet) -> None:
    """190 lines of 500 emoji are over 1 MiB as the agent's JSON (12 bytes each): sent at
    once, the report would be refused as too large, again and again."""
    wide = "\U0001f3b5" * 500
    script = f"import time\nfor i in range(190):\n    print(i, {wide!r})\ntime.sleep(1000)\n"
    repo = Repo.create(fleet.tmp / "repos" / "wide", {"wide.py": script})
    await fleet.start_agent("pi-1")
    async with fleet.manager.client() as ctl:
        await ctl.add("wide", repo.url, command=f"{PY} wide.py")

        async def all_lines() -> list[str] | None:
            lines: list[str] = (await ctl.logs("wide", lines=1000))["lines"]
            return lines if len(lines) >= 190 else None

        lines = await wait_for(all_lines, timeout=20, what="the 190 wide lines")
        assert lines == [f"{i} {wide}"[:500] for i in range(190)]
        assert (await ctl.status(["wide"]))["wide"]["status"] == "running"


async def test_lines_of_a_failed_report_are_sent_again(tmp_path: Path) -> None:
    """The manager is away for a while: the lines printed meanwhile arrive once it is back,
    each once and in order."""
    repo = Repo.create(tmp_path / "repos" / "ticker", {"tick.py": TICKER})
    data_dir = tmp_path / "manager"
    async with running_manager(data_dir, node_timeout=30.0) as first:
        fleet = Fleet(first, tmp_path)
        agent = await fleet.start_agent("pi-1")
        async with first.client() as ctl:
            await ctl.add("ticker", repo.url, command=f"{PY} tick.py")

            async def ticking() -> bool:
                return len((await ctl.logs("ticker"))["lines"]) >= 5

            await wait_for(ticking, timeout=20, what="the ticker's first lines")
        port = int(first.url.rsplit(":", 1)[1])
    local = agent.local["ticker"]
    assert local.sink is not None
    sink = local.sink

    # While no manager answers, lines pile up unacknowledged (the sink holds 200).
    def unacknowledged() -> int:
        return sink.next_seq - local.log_next

    await wait_for(
        lambda: asyncio.sleep(0, result=unacknowledged() >= 10),
        what="lines printed while the manager is away",
    )
    async with running_manager(data_dir, node_timeout=30.0, port=port) as second:
        fleet.manager = second
        printed = sink.next_seq
        async with second.client() as ctl:

            async def caught_up() -> list[str] | None:
                lines: list[str] = (await ctl.logs("ticker", lines=1000))["lines"]
                return lines if len(lines) >= printed else None

            lines = await wait_for(caught_up, timeout=20, what="the lines printed meanwhile")
        assert lines == [f"tick {i}" for i in range(len(lines))]
        await fleet.stop_agent("pi-1")


# what the manager keeps ---------------------------------------------------------------------
async def test_the_manager_keeps_the_last_1000_lines(manager: RunningManager) -> None:
    node = await placed_node(manager, "alpha")
    for start in (0, 500, 1000):
        batch = [f"line {i}" for i in range(start, start + 500)]
        await node.report("alpha", **output("s1", start, batch))
    async with manager.client() as ctl:
        kept = await ctl.logs("alpha", lines=1000)
        assert kept["lines"] == [f"line {i}" for i in range(500, 1500)]
        assert kept["seq"] == 500
        default = await ctl.logs("alpha")
        assert default["lines"] == [f"line {i}" for i in range(1300, 1500)]
        assert default["seq"] == 1300
    assert stored_lines(manager, "alpha") == 1000
    await node.close()


async def test_a_resent_report_adds_no_line_twice(manager: RunningManager) -> None:
    node = await placed_node(manager, "alpha")
    first = await node.report("alpha", **output("s1", 0, ["a", "b"]))
    # The answer was lost, say: the node sends the same lines again, then more with overlap.
    again = await node.report("alpha", **output("s1", 0, ["a", "b"]))
    assert first["update-result"] == again["update-result"] == "success"
    await node.report("alpha", **output("s1", 1, ["b", "c"]))
    async with manager.client() as ctl:
        assert (await ctl.logs("alpha"))["lines"] == ["a", "b", "c"]
        # A restarted agent starts a new stream: numbered from 0 again, and all new.
        await node.report("alpha", **output("s2", 0, ["d"]))
        await node.report("alpha", **output("s2", 0, ["d"]))
        assert (await ctl.logs("alpha"))["lines"] == ["a", "b", "c", "d"]
    assert stored_lines(manager, "alpha") == 4
    await node.close()


async def test_long_lines_are_cut_and_old_reports_still_work(manager: RunningManager) -> None:
    node = await placed_node(manager, "alpha")
    await node.report("alpha", **output("s1", 0, ["x" * 600, "short"]))
    no_log_fields: dict[str, Any] = {"log-tail": ["seed-style tail"]}  # no log fields
    await node.report("alpha", **no_log_fields)
    async with manager.client() as ctl:
        assert (await ctl.logs("alpha"))["lines"] == ["x" * 500, "short"]
        assert (await ctl.status(["alpha"]))["alpha"]["log-tail"] == ["seed-style tail"]
    await node.close()


async def test_a_line_with_a_nul_is_kept_with_a_replacement_and_the_others_commit(
    manager: RunningManager,
) -> None:
    """A project that prints a NUL (binary output): PostgreSQL's text cannot hold it, and it
    must not fail the batch of reports it is grouped with (every report in it would be refused,
    again at each resend). It is kept as U+FFFD on both stores, and a report beside it commits."""
    node = await placed_node(manager, "alpha", "beta")
    await asyncio.gather(
        node.report("alpha", **output("s1", 0, ["bin\x00ary", "after"])),
        node.report("beta", **output("s1", 0, ["beta line"])),
    )
    async with manager.client() as ctl:
        assert (await ctl.logs("alpha"))["lines"] == ["bin\ufffdary", "after"]
        assert (await ctl.logs("beta"))["lines"] == ["beta line"]
    await node.close()


async def test_a_removed_projects_lines_are_gone(manager: RunningManager) -> None:
    node = await placed_node(manager, "alpha")
    await node.report("alpha", **output("s1", 0, ["secret output"]))
    async with manager.client() as ctl:
        await ctl.remove("alpha", ALPHA_URL)
        assert stored_lines(manager, "alpha") == 0
        with pytest.raises(NotFound, match="no project named 'alpha'"):
            await ctl.logs("alpha")
        await ctl.add("alpha", ALPHA_URL, start=False)
        answer = await ctl.logs("alpha")
    assert answer == {
        "request-status": "success",
        "code": 0,
        "request-information": "",
        "project": "alpha",
        "node": None,
        "seq": 0,
        "lines": [],
        "times": [],
    }
    await node.close()


@pytest.mark.slow
async def test_acknowledged_lines_survive_kill_9(tmp_path: Path) -> None:
    with manager_process(tmp_path / "manager", password=PASSWORD) as manager:
        url = await asyncio.to_thread(manager.start)
        node = await SimNode.join(url, "pi-1")
        async with manager.client() as ctl:
            await ctl.add("alpha", ALPHA_URL)
        await node.poll()
        answer = await node.report("alpha", **output("s1", 0, ["before", "the crash"]))
        assert answer["update-result"] == "success"
        await node.close()
        manager.kill()

        url = await asyncio.to_thread(manager.start)
        node = SimNode(ManagerClient(url), node.name, node.token, node.seen)
        try:
            async with manager.client() as ctl:
                assert (await ctl.logs("alpha"))["lines"] == ["before", "the crash"]
                # Where the stream stood survived too: a resend adds nothing, new lines do.
                await node.report("alpha", **output("s1", 1, ["the crash", "after"]))
                assert (await ctl.logs("alpha"))["lines"] == ["before", "the crash", "after"]
        finally:
            await node.close()


# /events?logs= ------------------------------------------------------------------------------
async def test_events_deliver_followed_lines_live_and_only_to_followers(
    manager: RunningManager,
) -> None:
    node = await placed_node(manager, "alpha", "beta")
    headers = {"Authorization": f"Bearer {manager.token}"}
    async with (
        manager.client() as ctl,
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{manager.url}/events?logs=beta,alpha", headers=headers) as both,
    ):
        follower = ctl.events(logs=["alpha"])
        plain = ctl.events()
        for feed in (follower, plain):
            assert (await next_message(feed))["type"] == "snapshot"
        assert (await both.receive_json(timeout=5))["type"] == "snapshot"

        await node.report("alpha", **output("s1", 0, ["one", "two"]))
        await node.report("beta", **output("s7", 0, ["beta line"]))
        await node.report("alpha", **output("s1", 2, ["three"]))
        # A change after the lines: every feed has had everything before it once it arrives.
        await ctl.add("marker", "https://example.com/marker.git")

        followed = logs_messages(await until_change_of(follower, "marker"))
        assert lines_of(followed, "alpha") == ["one", "two", "three"]
        assert {m["project"] for m in followed} == {"alpha"}
        assert followed[0]["seq"] == 0
        assert followed[-1]["seq"] + len(followed[-1]["lines"]) == 3
        assert logs_messages(await until_change_of(plain, "marker")) == []

        seen_by_both: list[dict[str, Any]] = []
        while not any(m.get("projects", {}).get("marker") for m in seen_by_both):
            seen_by_both.append(await both.receive_json(timeout=5))
        both_logs = logs_messages(seen_by_both)
        assert lines_of(both_logs, "alpha") == ["one", "two", "three"]
        assert lines_of(both_logs, "beta") == ["beta line"]

        # Live: a line reported now arrives as its own message.
        await node.report("alpha", **output("s1", 3, ["four"]))
        live = await next_message(follower, of_type="logs")
        (time,) = live.pop("times")  # when the manager took it (the report sent no times)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", time)
        assert live == {"type": "logs", "project": "alpha", "seq": 3, "lines": ["four"]}
        await follower.aclose()
        await plain.aclose()
    await node.close()


async def test_events_refuse_a_bad_project_name(manager: RunningManager) -> None:
    async with manager.client() as ctl:
        with pytest.raises(InvalidRequest):
            await anext(ctl.events(logs=["../etc"]))


async def next_message(
    feed: AsyncIterator[dict[str, Any]], of_type: str | None = None
) -> dict[str, Any]:
    while True:
        message = await asyncio.wait_for(anext(feed), timeout=5)
        if of_type is None or message["type"] == of_type:
            return message


async def until_change_of(feed: AsyncIterator[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """Messages up to and including the first `changes` naming project `name`."""
    seen = []
    while True:
        message = await next_message(feed)
        seen.append(message)
        if message["type"] == "changes" and name in message["projects"]:
            return seen


def logs_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m["type"] == "logs"]


def lines_of(messages: list[dict[str, Any]], project: str) -> list[str]:
    return [line for m in messages if m["project"] == project for line in m["lines"]]

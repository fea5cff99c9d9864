"""Issue 16's logs: a time on every line, `logs --all`, and the log says what happened.

A real manager, real agents (in this process, or as processes where one is killed), real git
repositories and project processes; the CLI runs as a subprocess, as a person would run it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from syncopate.manager.auth import CONTROLLER_USER_KEY
from syncopate.manager.server import user_token
from tests.gitrepos import Repo
from tests.helpers import RunningManager, running_manager, wait_for
from tests.integration.test_agent import COUNTER, PY, Fleet
from tests.integration.test_agent_crash import agents, start_agent

pytestmark = pytest.mark.slow

TICKER = """\
import itertools
import sys
import time

for i in itertools.count():
    print(sys.argv[1], i, flush=True)
    time.sleep(0.05)
"""
WIRE_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
LOCAL_TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"


async def cli(manager: RunningManager, *args: str, token: str = "") -> str:
    """Run `syncopate ARGS` against the manager (off the event loop that serves it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCOPATE_")}
    env |= {"SYNCOPATE_MANAGER": manager.url, "SYNCOPATE_TOKEN": token or manager.token}
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "syncopate", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


async def kept(manager: RunningManager, name: str) -> dict[str, Any]:
    async with manager.client() as ctl:
        return await ctl.logs(name, 1000)


async def until_logged(manager: RunningManager, name: str, line: str) -> list[str]:
    """Wait until the project's kept log holds a line starting with `line`; its lines."""

    async def logged() -> list[str] | None:
        lines: list[str] = (await kept(manager, name))["lines"]
        return lines if any(text.startswith(line) for text in lines) else None

    return await wait_for(logged, timeout=30, what=f"{line!r} in {name}'s log")


async def add_ticker(fleet: Fleet, name: str) -> None:
    repo = Repo.create(fleet.tmp / "repos" / name, {"tick.py": TICKER})
    async with fleet.manager.client() as ctl:
        await ctl.add(name, repo.url, command=f"{PY} tick.py {name}")


async def test_every_line_has_the_time_it_was_printed_in_order(fleet: Fleet) -> None:
    before = datetime.now(UTC)
    await fleet.start_agent("pi-1")
    await add_ticker(fleet, "ticker")
    await until_logged(fleet.manager, "ticker", "ticker 20")
    answer = await kept(fleet.manager, "ticker")
    times = answer["times"]
    assert len(times) == len(answer["lines"]) and all(WIRE_TIME.fullmatch(t) for t in times)
    assert times == sorted(times)
    moments = [datetime.fromisoformat(t.replace("Z", "+00:00")) for t in times]
    assert before <= moments[0] and moments[-1] <= datetime.now(UTC)
    # Printed every 50 ms and sent in reports every 200 ms: the times are the agent's, when
    # each line was printed, not one time per report.
    ticks = [m for m, line in zip(moments, answer["lines"], strict=True) if "ticker" in line]
    assert len(set(ticks)) > len(ticks) // 2

    printed = (await cli(fleet.manager, "logs", "ticker", "-n", "5")).splitlines()
    assert len(printed) == 5
    assert all(re.fullmatch(rf"{LOCAL_TIME} ticker \d+", line) for line in printed), printed
    raw = (await cli(fleet.manager, "logs", "ticker", "-n", "3", "--no-time")).splitlines()
    assert all(re.fullmatch(r"ticker \d+", line) for line in raw), raw
    shown = json.loads(await cli(fleet.manager, "logs", "ticker", "-n", "3", "--json"))
    assert len(shown["times"]) == len(shown["lines"]) == 3
    assert all(WIRE_TIME.fullmatch(t) for t in shown["times"])


async def test_logs_all_interleaves_every_project_prefixed_in_time_order(fleet: Fleet) -> None:
    await fleet.start_agent("pi-1")
    await add_ticker(fleet, "alpha")
    await add_ticker(fleet, "b")
    await until_logged(fleet.manager, "alpha", "alpha 25")
    await until_logged(fleet.manager, "b", "b 25")

    printed = (await cli(fleet.manager, "logs", "--all", "-n", "40")).splitlines()
    assert len(printed) == 40
    found = [re.fullmatch(rf"({LOCAL_TIME}) (alpha|b    ) \| (.*)", line) for line in printed]
    assert all(found), printed
    names = {m.group(2).strip() for m in found if m}
    assert names == {"alpha", "b"}
    assert [m.group(1) for m in found if m] == sorted(m.group(1) for m in found if m)
    every = json.loads(await cli(fleet.manager, "logs", "--all", "-n", "20", "--json"))
    assert [o["time"] for o in every] == sorted(o["time"] for o in every)
    assert {o["name"] for o in every} == {"alpha", "b"}

    # --all --follow: both projects' new lines, and those of a project added meanwhile.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCOPATE_")}
    env |= {"SYNCOPATE_MANAGER": fleet.manager.url, "SYNCOPATE_TOKEN": fleet.manager.token}
    argv = [sys.executable, "-m", "syncopate", "logs", "--all", "-f", "-n", "1", "--no-time"]
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True) as follower:
        assert follower.stdout is not None
        out = follower.stdout
        try:
            first = await asyncio.to_thread(out.readline)
            assert re.fullmatch(r"(alpha|b    ) \| .*\n", first), first
            await add_ticker(fleet, "latecomer")

            async def read_until(prefixes: set[str]) -> set[str]:
                seen: set[str] = set()
                while not prefixes <= seen:
                    line = await asyncio.to_thread(out.readline)
                    assert line, "the follower stopped"
                    seen.add(line.split(" | ")[0])
                return seen

            seen = await asyncio.wait_for(read_until({"latecomer"}), timeout=30)
            assert {prefix.strip() for prefix in seen} == {"alpha", "b", "latecomer"}
            # From then on the others are padded to the new name's width.
            await asyncio.wait_for(read_until({"alpha    ", "b        "}), timeout=30)
        finally:
            follower.send_signal(signal.SIGINT)  # how following ends
            assert await asyncio.to_thread(follower.wait, 10) == 0


async def test_the_log_says_who_stopped_started_and_restarted_it(fleet: Fleet) -> None:
    alice = user_token(fleet.manager.state.store, "alice")
    main = fleet.manager.state.store.get_meta(CONTROLLER_USER_KEY)  # who has the main token
    await fleet.start_agent("pi-1")
    await add_ticker(fleet, "ticker")
    await until_logged(fleet.manager, "ticker", "ticker 3")
    await cli(fleet.manager, "project", "stop", "ticker", token=alice)
    await fleet.until("ticker", lambda p: p["status"] == "stopped", "the ticker to stop")
    await cli(fleet.manager, "project", "start", "ticker")  # the main token
    await cli(fleet.manager, "project", "restart", "ticker", token=alice)
    lines = await until_logged(fleet.manager, "ticker", "[syncopate] restarted by alice")
    notes = [line for line in lines if line.endswith((" by alice", f" by {main}"))]
    assert notes == [
        "[syncopate] stopped by alice",
        f"[syncopate] started by {main}",
        "[syncopate] restarted by alice",
    ]
    printed = await cli(fleet.manager, "logs", "ticker")
    assert re.search(rf"^{LOCAL_TIME} \[syncopate\] stopped by alice$", printed, re.M)


async def test_a_new_commit_is_named_in_the_log_with_its_subject(fleet: Fleet) -> None:
    repo = Repo.create(fleet.tmp / "repos" / "web", {"tick.py": TICKER})
    await fleet.start_agent("pi-1", sync_interval=0.3)
    async with fleet.manager.client() as ctl:
        await ctl.add("web", repo.url, command=f"{PY} tick.py web")
    await until_logged(fleet.manager, "web", "web 3")
    second = repo.commit({"tick.py": TICKER.replace("sys.argv[1], i", "'v2', i")}, "say v2")
    lines = await until_logged(fleet.manager, "web", "v2 ")
    assert any(line.startswith(f"[syncopate] new commit {second[:7]} (say v2)") for line in lines)


async def test_a_killed_nodes_project_says_where_it_moved(tmp_path: Path) -> None:
    repo = Repo.create(tmp_path / "repos" / "counter", {"counter.py": COUNTER})
    async with (
        running_manager(tmp_path / "manager", node_timeout=2.0) as manager,
        agents() as started,
    ):
        doomed = start_agent(started, manager, tmp_path / "a", "a")
        async with manager.client() as ctl:

            async def a_alive() -> bool:
                return "a" in await ctl.nodes()

            await wait_for(a_alive, timeout=30, what="node a to join")
            await ctl.add("counter", repo.url, {"count": 0}, command=f"{PY} counter.py")
            await until_logged(manager, "counter", "count 3")
            on_a = (await ctl.status(["counter"]))["counter"]
            start_agent(started, manager, tmp_path / "b", "b")

            async def b_alive() -> bool:
                return (await ctl.nodes()).get("b", {}).get("status") == "alive"

            await wait_for(b_alive, timeout=30, what="node b to join")
            # Power loss on a: the agent and its project die at once, no goodbye.
            doomed.kill()
            os.killpg(on_a["pid"], signal.SIGKILL)
            await asyncio.to_thread(doomed.wait)
            lines = await until_logged(manager, "counter", "[syncopate] now on node b")
        moved = [line for line in lines if line.startswith("[syncopate] moved to")]
        assert moved == ["[syncopate] moved to b: node a died (silent for 2s)"]
        assert lines.index(moved[0]) < lines.index("[syncopate] now on node b")

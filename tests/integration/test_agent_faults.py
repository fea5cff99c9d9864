"""The agent off the happy path: crash loops, steps that raise, answers that overlap, full disks.

Real manager, real agents, real git repositories and real project processes; copies of a
project are counted by scanning /proc, independently of what the agent believes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import secrets
import shlex
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from syncopate.node import git_sync
from syncopate.node.agent import Agent, AgentSettings
from syncopate.node.leftovers import MARKER, marker_value
from tests.faults import fill_up, small_tmpfs
from tests.gitrepos import Repo
from tests.helpers import wait_for
from tests.integration.test_agent import PY, Fleet, counter_repo
from tests.integration.test_agent_crash import agents, start_agent
from tests.stores import sqlite_store as sqlite_store

pytestmark = pytest.mark.slow

SLEEPER = "exec sleep 1000"


def copies(fleet: Fleet, project: str, node: str) -> set[int]:
    """Process groups running `project` for this test's agent `node`: one group per copy.

    Only processes carrying the marker of that agent's data dir count: another test run on the
    same machine (same project and node names) must not look like a second copy here.
    """
    home = marker_value(fleet.tmp / "nodes" / node)
    groups = set()
    for proc in psutil.process_iter():
        try:
            env = proc.environ()
            if env.get("SYNCOPATE_PROJECT") != project or env.get("SYNCOPATE_NODE") != node:
                continue
            if env.get(MARKER) != home:
                continue
            if proc.status() != psutil.STATUS_ZOMBIE:
                groups.add(os.getpgid(proc.pid))
        except (psutil.Error, ProcessLookupError):
            continue
    return groups


@contextlib.asynccontextmanager
async def sampled(
    fleet: Fleet, project: str, node: str, every: float = 0.02
) -> AsyncIterator[list[int]]:
    """Count the copies of `project` on `node` every `every` seconds while the block runs."""
    counts: list[int] = []
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            counts.append(len(await asyncio.to_thread(copies, fleet, project, node)))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(every):
                    await done.wait()

    task = asyncio.create_task(sample())
    try:
        yield counts
    finally:
        done.set()
        await task


async def test_a_crash_loop_becomes_failed_and_start_clears_it(fleet: Fleet) -> None:
    fixed = fleet.tmp / "fixed"
    command = f"test -e {shlex.quote(str(fixed))} || {{ echo boom; exit 3; }}; {SLEEPER}"
    repo = Repo.create(fleet.tmp / "repos" / "looper", {"README": "loops\n"})
    await fleet.start_agent("pi-1")
    started = time.monotonic()
    async with fleet.manager.client() as ctl:
        await ctl.add("looper", repo.url, {}, command=command)
    failed = await fleet.until(
        "looper", lambda p: p["status"] == "failed", "the crash loop to be failed"
    )
    print(f"time to failed: {time.monotonic() - started:.2f}s")
    assert failed["reason"].startswith("crash loop: 5 runs in a row each ended within 10s")
    assert (
        "(last: code 3)" in failed["reason"]
        and "last output: boom | boom | boom" in (failed["reason"])
    )
    assert failed["exit-code"] == 3 and failed["pid"] is None
    assert failed["restarts"] == 4
    assert "boom" in failed["log-tail"]
    # It stays down: later reports (the agent sends one every 0.2 s) show no new run.
    seen = failed["updated-at"]
    for _ in range(3):

        def newer(p: dict[str, Any], seen: Any = seen) -> bool:
            return bool(p["updated-at"] != seen)

        later = await fleet.until("looper", newer, "a later report")
        seen = later["updated-at"]
        assert later["status"] == "failed" and later["restarts"] == 4
    assert copies(fleet, "looper", "pi-1") == set()
    # Fixed, then `start`: it runs again.
    fixed.touch()
    async with fleet.manager.client() as ctl:
        await ctl.start(["looper"])
    running = await fleet.until(
        "looper", lambda p: p["status"] == "running" and p["pid"], "looper to run after start"
    )
    assert running["reason"] in (None, "")
    assert len(copies(fleet, "looper", "pi-1")) == 1


async def test_a_late_answer_and_the_fresh_one_never_run_two_copies(fleet: Fleet) -> None:
    # SIGTERM is ignored, so stopping the old copy takes the whole grace (2 s): a start that did
    # not wait for the stop would show as a second copy for that long.
    repo = Repo.create(fleet.tmp / "repos" / "stubborn", {"README": "stubborn\n"})
    agent = await fleet.start_agent("pi-1")
    async with fleet.manager.client() as ctl:
        await ctl.add("stubborn", repo.url, {}, command=f"trap '' TERM; {SLEEPER}")
    first = await fleet.until("stubborn", lambda p: p["pid"], "stubborn to run")
    async with sampled(fleet, "stubborn", "pi-1") as counts:
        async with fleet.manager.client() as ctl:
            await ctl.reset(["stubborn"])  # a new epoch on the same node
        fresh = await agent.client.node_status(agent.name, agent.token)
        # After a partition: the answer held through the cut (the project had moved away)
        # arrives just before the fresh one (it is back here, under a new epoch).
        agent.reconcile({})
        agent.reconcile(fresh["projects"])
        await fleet.until(
            "stubborn",
            lambda p: p["epoch"] > first["epoch"] and p["pid"] not in (None, first["pid"]),
            "the new epoch to run",
        )
        await wait_for(
            lambda: asyncio.to_thread(lambda: len(copies(fleet, "stubborn", "pi-1")) == 1),
            what="one copy left",
        )
    print(f"samples: {len(counts)}, most copies at once: {max(counts)}")
    assert max(counts) == 1


async def test_an_older_answer_is_dropped(tmp_path: Path) -> None:
    agent = Agent(AgentSettings(manager="http://127.0.0.1:9", data_dir=tmp_path))
    try:
        assert agent.fresh_answer({"manager-run": "a", "sequence": 5})
        assert not agent.fresh_answer({"manager-run": "a", "sequence": 5})
        assert not agent.fresh_answer({"manager-run": "a", "sequence": 4})
        assert agent.fresh_answer({"manager-run": "a", "sequence": 6})
        assert agent.fresh_answer({"manager-run": "b", "sequence": 0})  # a restarted manager
        assert agent.fresh_answer({})  # a manager that does not number its answers
    finally:
        await agent.client.close()


async def test_a_step_that_raises_fails_the_project_and_backs_off(
    fleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="syncopate.node")
    repo = Repo.create(fleet.tmp / "repos" / "sleeper", {"README": "sleeps\n"})
    await fleet.start_agent("pi-1")
    async with fleet.manager.client() as ctl:
        await ctl.add("sleeper", repo.url, {"n": 1}, command=SLEEPER)
        await ctl.add("counter", counter_repo(fleet.tmp).url, {}, command=f"{PY} counter.py")
    await fleet.until("sleeper", lambda p: p["pid"], "sleeper to run")
    # Its variables file can no longer be written: the next start under a new epoch fails.
    variables_file = fleet.tmp / "nodes" / "pi-1" / "projects" / "sleeper" / "project.variables"
    variables_file.unlink()
    variables_file.mkdir()
    async with fleet.manager.client() as ctl:
        await ctl.reset(["sleeper"])
    failed = await fleet.until(
        "sleeper", lambda p: p["status"] == "failed", "the failed step to show"
    )
    assert failed["reason"].startswith(f"bring up failed: Is a directory: {variables_file}")

    def attempts() -> list[float]:
        return [r.created for r in caplog.records if "bring up failed" in r.getMessage()]

    await wait_for(lambda: asyncio.sleep(0, len(attempts()) >= 3), timeout=20, what="3 tries")
    tries = attempts()
    gaps = [later - earlier for earlier, later in itertools.pairwise(tries)]
    print(f"retries after a failing step: gaps {[round(g, 2) for g in gaps]} s")
    assert gaps[0] >= 0.9 and gaps[1] >= 1.9  # 1 s, then 2 s: backing off, never spinning
    # The other project was served all along.
    before = (await fleet.project("counter"))["persistent-variables"].get("count", 0)
    await fleet.until(
        "counter",
        lambda p: p["persistent-variables"].get("count", 0) > before + 5,
        "the other project to go on counting",
    )
    variables_file.rmdir()
    recovered = await fleet.until(
        "sleeper", lambda p: p["status"] == "running" and p["pid"], "sleeper to recover"
    )
    assert recovered["persistent-variables"] == {"n": 1}


async def test_disk_usage_is_measured_as_soon_as_it_runs(fleet: Fleet) -> None:
    blob = secrets.token_hex(512 * 1024)  # 1 MB that git cannot compress much
    repo = Repo.create(fleet.tmp / "repos" / "big", {"blob.txt": blob})
    await fleet.start_agent("pi-1")
    async with fleet.manager.client() as ctl:
        await ctl.add("big", repo.url, {}, command=SLEEPER)
    # The agent measures disk once a minute (DISK_PROBE_EVERY); the first figure must not wait.
    info = await fleet.until(
        "big", lambda p: p["pid"] and p["disk-usage"] >= 1.0, "disk usage to be reported"
    )
    assert info["disk-usage"] < 10


async def test_a_full_disk_on_the_node_is_named_and_the_agent_does_not_spin(
    tmp_path: Path,
) -> None:
    from tests.helpers import running_manager

    repo = counter_repo(tmp_path)
    with small_tmpfs(tmp_path / "node", "8m") as node_dir:
        async with (
            running_manager(tmp_path / "manager", node_timeout=30.0) as manager,
            agents() as started,
        ):
            agent = start_agent(started, manager, node_dir, "pi")
            async with manager.client() as ctl:

                async def status() -> dict[str, Any]:
                    return (await ctl.status(["counter"]))["counter"]

                await ctl.add("counter", repo.url, {"count": 0}, command=f"{PY} counter.py")
                await wait_for(
                    lambda: _when(status(), lambda p: p["pid"]), timeout=30, what="counter"
                )
                filler = node_dir / "filler"
                fill_up(filler)
                # The counter writes its variables 20 times a second: it dies of the full
                # disk, again and again, until the crash loop stops it.
                failed = await wait_for(
                    lambda: _when(status(), lambda p: p["status"] == "failed"),
                    timeout=30,
                    what="the counter to fail on the full disk",
                )
                assert "no space left on device" in failed["reason"].lower()
                print(f"reason on a full disk: {failed['reason']}")
                # A new epoch: the agent itself cannot write the variables. It says why, and
                # retries with backoff instead of spinning.
                await ctl.reset(["counter"])
                stuck = await wait_for(
                    lambda: _when(status(), lambda p: "bring up failed" in (p["reason"] or "")),
                    timeout=30,
                    what="the agent's own write to fail",
                )
                assert "No space left on device" in stuck["reason"]
                proc = psutil.Process(agent.pid)
                cpu_before, wall_before = sum(proc.cpu_times()[:2]), time.monotonic()
                seen = stuck["updated-at"]
                for _ in range(10):  # ten more reports, about two seconds

                    async def reported(seen: Any = seen) -> dict[str, Any] | None:
                        return await _when(status(), lambda p: p["updated-at"] != seen)

                    later = await wait_for(reported, what="a later report")
                    seen = later["updated-at"]
                share = (sum(proc.cpu_times()[:2]) - cpu_before) / (time.monotonic() - wall_before)
                print(f"agent CPU while its disk is full: {share:.1%} of one core")
                assert share < 0.5
                filler.unlink()
                await ctl.start(["counter"])
                await wait_for(
                    lambda: _when(status(), lambda p: p["status"] == "running" and p["pid"]),
                    timeout=30,
                    what="the counter to run again once there is space",
                )


async def _when(
    info: Awaitable[dict[str, Any]], check: Callable[[dict[str, Any]], object]
) -> dict[str, Any] | None:
    """The awaited status when `check` holds of it, else None (for wait_for)."""
    value = await info
    return value if check(value) else None


async def test_an_agent_leaving_mid_step_leaves_nothing_running(fleet: Fleet) -> None:
    # A reset while the old copy ignores SIGTERM: the stop step takes the whole grace (2 s),
    # the new epoch's start waits behind it, and the agent is told to leave meanwhile.
    repo = Repo.create(fleet.tmp / "repos" / "stubborn", {"README": "stubborn\n"})
    agent = await fleet.start_agent("pi-1")
    async with fleet.manager.client() as ctl:
        await ctl.add("stubborn", repo.url, {}, command=f"trap '' TERM; {SLEEPER}")
        await fleet.until("stubborn", lambda p: p["pid"], "stubborn to run")
        await ctl.reset(["stubborn"])
    await wait_for(lambda: asyncio.sleep(0, "_stop" in agent.steps.values()), what="the stop step")
    await fleet.stop_agent("pi-1")
    # Any step still under way would start the new copy when it ends: let them all end first.
    await wait_for(lambda: asyncio.sleep(0, not agent.steps), what="every step to end")
    assert copies(fleet, "stubborn", "pi-1") == set()


async def test_a_fetch_that_returns_after_a_reset_never_restarts_the_old_epoch(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A slow network: the real fetch runs, but its answer is held until the reset has reached
    # the agent. The fetch then finds a new commit for a copy that was replaced meanwhile.
    held, reset_seen = threading.Event(), threading.Event()
    real_update = git_sync.update

    def slow_update(checkout: Path, ref: str | None, **options: Any) -> tuple[str, bool]:
        found = real_update(checkout, ref, **options)
        held.set()
        reset_seen.wait(20)
        return found

    monkeypatch.setattr(git_sync, "update", slow_update)
    repo = Repo.create(fleet.tmp / "repos" / "stubborn", {"README": "stubborn\n"})
    agent = await fleet.start_agent("pi-1", sync_interval=0.2)
    async with fleet.manager.client() as ctl:
        await ctl.add("stubborn", repo.url, {}, command=f"trap '' TERM; {SLEEPER}")
        first = await fleet.until("stubborn", lambda p: p["pid"], "stubborn to run")
        async with sampled(fleet, "stubborn", "pi-1") as counts:
            repo.commit({"README": "new\n"})
            await wait_for(lambda: asyncio.sleep(0, held.is_set()), what="a fetch under way")
            await ctl.reset(["stubborn"])
            await wait_for(
                lambda: asyncio.sleep(0, agent.local["stubborn"].epoch > first["epoch"]),
                what="the reset to reach the agent",
            )
            reset_seen.set()
            await fleet.until(
                "stubborn",
                lambda p: p["epoch"] > first["epoch"] and p["pid"] not in (None, first["pid"]),
                "the new epoch to run",
            )
            await wait_for(
                lambda: asyncio.to_thread(lambda: len(copies(fleet, "stubborn", "pi-1")) == 1),
                what="one copy left",
            )
    print(f"samples: {len(counts)}, most copies at once: {max(counts)}")
    assert max(counts) == 1

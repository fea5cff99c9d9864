"""The agent as a real process: killed with -9 alone, or with its projects (a power loss)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.gitrepos import Repo
from tests.helpers import PASSWORD, RunningManager, running_manager, wait_for
from tests.integration.test_agent import COUNTER, PY

pytestmark = pytest.mark.slow


@asynccontextmanager
async def agents() -> AsyncIterator[list[subprocess.Popen[str]]]:
    """Agent processes, stopped with SIGTERM at the end (waited for off the event loop: the
    manager they say goodbye to runs in this loop)."""
    started: list[subprocess.Popen[str]] = []
    try:
        yield started
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    code = await asyncio.to_thread(proc.wait, 20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                    raise AssertionError("an agent did not stop within 20 s of SIGTERM") from None
                assert code == 0, f"agent exited {code} after SIGTERM"


def start_agent(
    started: list[subprocess.Popen[str]], manager: RunningManager, data_dir: Path, name: str
) -> subprocess.Popen[str]:
    command = [
        sys.executable, "-m", "syncopate", "node", "join", manager.url,
        "--password", PASSWORD, "--name", name, "--data-dir", str(data_dir),
        "--interval", "0.2", "--sync-interval", "30",
    ]  # fmt: skip
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True
    )
    started.append(proc)
    return proc


def copies_in(checkout: Path) -> list[psutil.Process]:
    """Live counter.py interpreters running in this checkout (not the `sh -c` around them)."""
    found = []
    for proc in psutil.process_iter(["cwd", "cmdline"]):
        try:
            here = proc.info["cwd"] == str(checkout) and "counter.py" in (
                proc.info["cmdline"] or []
            )
            if here and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


async def project(manager: RunningManager, name: str) -> dict[str, Any]:
    async with manager.client() as ctl:
        return (await ctl.status([name]))[name]


async def test_agent_killed_alone_restarts_with_one_copy(tmp_path: Path) -> None:
    repo = Repo.create(tmp_path / "repos" / "counter", {"counter.py": COUNTER})
    node_dir = tmp_path / "node"
    checkout = (node_dir / "projects" / "counter").resolve()
    async with (
        running_manager(tmp_path / "manager", node_timeout=30.0) as manager,
        agents() as started,
    ):
        first_agent = start_agent(started, manager, node_dir, "pi")
        async with manager.client() as ctl:
            await ctl.add("counter", repo.url, {"count": 0}, command=f"{PY} counter.py")

        async def running() -> dict[str, Any] | None:
            info = await project(manager, "counter")
            return info if info["status"] == "running" and info["pid"] else None

        before = await wait_for(running, timeout=30, what="counter to run")
        assert len(copies_in(checkout)) == 1
        first_agent.kill()  # kill -9 the agent alone; its project keeps running
        first_agent.wait()
        assert psutil.pid_exists(before["pid"])

        start_agent(started, manager, node_dir, "pi")

        async def one_new_copy() -> bool:
            info = await project(manager, "counter")
            copies = copies_in(checkout)
            return (
                info["status"] == "running"
                and info["pid"] not in (None, before["pid"])
                and len(copies) == 1
                and copies[0].ppid() == info["pid"]  # the interpreter under `sh -c`
            )

        await wait_for(one_new_copy, timeout=30, what="exactly one new copy of counter")
        async with manager.client() as ctl:
            nodes = await ctl.nodes()
        assert list(nodes) == ["pi"]  # the restarted agent kept its name and token


async def test_power_loss_resumes_on_another_node_from_its_variables(tmp_path: Path) -> None:
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

        async def counting() -> dict[str, Any] | None:
            info = await project(manager, "counter")
            count = info["persistent-variables"].get("count", 0)
            return info if info["node"] == "a" and count > 5 else None

        on_a = await wait_for(counting, timeout=30, what="counter to count on a")
        start_agent(started, manager, tmp_path / "b", "b")
        # Power loss on a: the agent and its project die at once, no goodbye.
        doomed.kill()
        os.killpg(on_a["pid"], signal.SIGKILL)
        doomed.wait()
        last = (await project(manager, "counter"))["persistent-variables"]["count"]

        async def resumed() -> dict[str, Any] | None:
            info = await project(manager, "counter")
            count = info["persistent-variables"].get("count", 0)
            ok = info["node"] == "b" and info["status"] == "running" and count > last
            return info if ok else None

        on_b = await wait_for(resumed, timeout=30, what="counter to resume on b")
        assert on_b["epoch"] > on_a["epoch"]

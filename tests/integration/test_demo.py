"""`syncopate demo` as a user runs it: a real subprocess with real agents, projects and git."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest

from syncopate.client import ManagerClient
from syncopate.demo.repos import find_examples
from tests.gitrepos import Repo
from tests.helpers import wait_for

pytestmark = pytest.mark.slow

EXAMPLES = {example.name for example in find_examples()}


class Demo:
    """`python -m syncopate demo --no-tui` in its own session, its output collected by line."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith("SYNCOPATE_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "syncopate", "demo", "--no-tui", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**base, **(env or {})},
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._done: queue.Queue[None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout:
            for line in self.proc.stdout:
                self.lines.append(line.rstrip("\n"))
        self._done.put(None)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    async def value(self, key: str) -> str:
        """The value of the `KEY=value` line the demo prints, once it has."""

        async def printed() -> str | None:
            found = [line for line in self.lines if line.startswith(f"{key}=")]
            if self.proc.poll() is not None and not found:
                raise AssertionError(f"the demo exited ({self.proc.returncode}):\n{self.output}")
            return found[0].partition("=")[2] if found else None

        return await wait_for(printed, timeout=60, interval=0.05, what=f"{key}=")

    async def wait(self, timeout: float = 60) -> int:
        code = await asyncio.to_thread(self.proc.wait, timeout)
        await asyncio.to_thread(self._done.get, True, 10)  # all of its output read
        return code


def processes_under(folder: Path) -> list[str]:
    """Processes whose command line or working directory lies in `folder`."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "cwd", "status"]):
        info = proc.info
        if info["status"] == psutil.STATUS_ZOMBIE:
            continue
        cmdline = " ".join(info["cmdline"] or ())
        if str(folder) in cmdline or str(info["cwd"] or "").startswith(str(folder)):
            found.append(f"{info['pid']}: {cmdline} (in {info['cwd']})")
    return found


def end_processes_under(folder: Path) -> None:
    """After a failed test only: nothing it started may outlive it."""
    for line in processes_under(folder):
        pid = int(line.partition(":")[0])
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@contextlib.asynccontextmanager
async def running_demo(scratch: Path, nodes: int) -> AsyncIterator[tuple[Demo, ManagerClient]]:
    """The demo, and a client of its manager once it has printed where that is."""
    demo = Demo("--nodes", str(nodes), "--dir", str(scratch))
    try:
        url = await demo.value("SYNCOPATE_MANAGER")
        token = await demo.value("SYNCOPATE_TOKEN")
        async with ManagerClient(url, token) as ctl:
            yield demo, ctl
    finally:
        if demo.proc.poll() is None:
            demo.proc.kill()
            demo.proc.wait(timeout=10)
        end_processes_under(scratch)


async def test_demo_runs_the_examples_on_its_nodes_and_ctrl_c_leaves_nothing(
    tmp_path: Path,
) -> None:
    scratch = (tmp_path / "demo").resolve()
    async with running_demo(scratch, nodes=3) as (demo, ctl):

        async def fleet_up() -> bool:
            nodes, projects = await ctl.nodes(), await ctl.status()
            alive = {name for name, info in nodes.items() if info["status"] == "alive"}
            running = {name for name, info in projects.items() if info["status"] == "running"}
            return alive == {"demo-1", "demo-2", "demo-3"} and running == EXAMPLES

        await wait_for(fleet_up, timeout=30, interval=0.1, what="3 nodes and the examples")
        projects = await ctl.status()
        # Three projects spread over three nodes: the demo waits for every node to join.
        assert len({info["node"] for info in projects.values()}) == 3, projects

        async def count() -> int:
            info = (await ctl.status(["counter"]))["counter"]
            return int(info["persistent-variables"].get("count", 0))

        first = await count()

        async def counted_on() -> bool:
            return await count() > first

        await wait_for(counted_on, timeout=10, interval=0.1, what="the count to grow")

        async def ticked() -> list[str]:
            tail = (await ctl.status(["ticker"]))["ticker"].get("log-tail") or []
            return [line for line in tail if " tick " in line]

        await wait_for(ticked, timeout=10, interval=0.1, what="the ticker's output")

        # The demo says so itself, at its next look (it looks each second: the checks above
        # can all pass within one, now that reports ride on the agents' polls).
        async def said_running() -> bool:
            return "demo: 3 nodes alive, 3 projects running" in demo.output

        await wait_for(said_running, timeout=10, interval=0.1, what="the demo's running line")

        second = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "syncopate", "demo", "--no-tui", "--dir", str(scratch)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert second.stderr == f"error: another demo is running in {scratch}\n"

        demo.proc.send_signal(signal.SIGINT)
        assert await demo.wait() == 0, demo.output
        assert demo.lines[-1] == "demo: stopped; nothing left running", demo.output
        assert processes_under(scratch) == []


async def test_projects_of_a_killed_agent_are_ended_when_the_demo_stops(tmp_path: Path) -> None:
    # A project runs in its own session, so it outlives an agent killed with SIGKILL; one
    # that writes no output does not even notice. The demo must still end it.
    scratch = (tmp_path / "demo").resolve()
    silent = Repo.create(tmp_path / "silent", {"README.md": "sleeps\n"})
    async with running_demo(scratch, nodes=2) as (demo, ctl):
        await ctl.add("silent", silent.url, command="exec sleep 600")

        async def running_on() -> str | None:
            info = (await ctl.status(["silent"]))["silent"]
            return str(info["node"]) if info["status"] == "running" else None

        node = await wait_for(running_on, timeout=30, interval=0.1, what="silent to run")
        agent = next(line for line in demo.lines if line.startswith(f"node     {node} "))
        os.kill(int(agent.split()[3]), signal.SIGKILL)
        checkout = scratch / "nodes" / node / "projects" / "silent"

        async def orphaned() -> bool:
            return any(str(checkout) in line for line in processes_under(scratch)) and (
                f"demo: node {node} exited (-9)" in demo.output
            )

        await wait_for(orphaned, timeout=10, what="the demo to see its node die")

        demo.proc.send_signal(signal.SIGINT)
        assert await demo.wait() == 0, demo.output
        assert f"ended silent on {node}, left running by its agent" in demo.lines, demo.output
        assert processes_under(scratch) == []


def test_demo_without_git_says_so_in_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "syncopate", "demo", "--no-tui", "--dir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PATH": str(empty)},
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: git is not installed"), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "d").exists()

"""The node agent for real: a real manager, agents, git repositories and project processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from syncopate.node.agent import Agent, AgentSettings
from syncopate.node.backoff import BackoffPolicy
from tests.gitrepos import Repo
from tests.helpers import PASSWORD, RunningManager, running_manager, wait_for

COUNTER = """\
import time
from syncopate import variables

state = variables.load()
while True:
    state["count"] = state.get("count", 0) + 1
    variables.save(state)
    print("count", state["count"], flush=True)
    time.sleep(0.05)
"""
PY = sys.executable


@dataclass
class Fleet:
    manager: RunningManager
    tmp: Path
    agents: dict[str, tuple[Agent, asyncio.Event, asyncio.Task[None]]] = field(default_factory=dict)

    async def start_agent(self, name: str, **options: Any) -> Agent:
        settings = AgentSettings(
            manager=self.manager.url,
            data_dir=self.tmp / "nodes" / name,
            password=PASSWORD,
            name=name,
            interval=options.pop("interval", 0.2),
            sync_interval=options.pop("sync_interval", 0.3),
            poll_wait=options.pop("poll_wait", 5.0),
            grace=options.pop("grace", 2.0),
            backoff=options.pop("backoff", BackoffPolicy(first=0.05, cap=0.5)),
            **options,
        )
        agent = Agent(settings)
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        self.agents[name] = (agent, stop, task)
        await wait_for(self._joined(name), what=f"{name} to join")
        return agent

    def _joined(self, name: str) -> Callable[[], Any]:
        async def check() -> bool:
            async with self.manager.client() as ctl:
                node = (await ctl.nodes()).get(name)
            return node is not None and node["status"] == "alive"

        return check

    async def stop_agent(self, name: str) -> None:
        _, stop, task = self.agents.pop(name)
        stop.set()
        await asyncio.wait_for(task, timeout=15)

    async def project(self, name: str) -> dict[str, Any]:
        async with self.manager.client() as ctl:
            return (await ctl.status([name]))[name]

    async def until(
        self, name: str, check: Callable[[dict[str, Any]], bool], what: str, timeout: float = 20
    ) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            info = await self.project(name)
            return info if check(info) else None

        return await wait_for(probe, timeout=timeout, what=what)


def counter_repo(tmp: Path, name: str = "counter") -> Repo:
    return Repo.create(tmp / "repos" / name, {"counter.py": COUNTER})


def alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


async def test_added_project_runs_and_its_variables_reach_the_manager(fleet: Fleet) -> None:
    repo = counter_repo(fleet.tmp)
    await fleet.start_agent("pi-1")
    async with fleet.manager.client() as ctl:
        await ctl.add("counter", repo.url, {"count": 100}, command=f"{PY} counter.py")
    info = await fleet.until(
        "counter",
        lambda p: p["status"] == "running" and p["persistent-variables"].get("count", 0) > 102,
        "counter to run and count past its initial 100",
    )
    assert info["node"] == "pi-1"
    assert info["commit"] == repo.head()
    assert alive(info["pid"])
    assert any(line.startswith("count ") for line in info["log-tail"])
    checkout = fleet.tmp / "nodes" / "pi-1" / "projects" / "counter"
    assert (checkout / "counter.py").exists()
    assert (fleet.tmp / "nodes" / "pi-1" / "logs" / "counter.log").stat().st_size > 0


async def test_run_sh_convention_and_syncopate_toml(fleet: Fleet) -> None:
    shell = Repo.create(
        fleet.tmp / "repos" / "shell",
        {"run.sh": "#!/bin/sh\necho from-run-sh\nexec sleep 1000\n"},
        executable=("run.sh",),
    )
    toml = Repo.create(
        fleet.tmp / "repos" / "toml",
        {"syncopate.toml": '[run]\ncommand = "echo from-toml; exec sleep 1000"\n'},
    )
    await fleet.start_agent("pi-1")
    async with fleet.manager.client() as ctl:
        await ctl.add("shell", shell.url)
        await ctl.add("toml", toml.url)
    for name, line in (("shell", "from-run-sh"), ("toml", "from-toml")):

        def printed(p: dict[str, Any], line: str = line) -> bool:
            return p["status"] == "running" and line in p["log-tail"]

        await fleet.until(name, printed, f"{name} to run and print {line}")


async def test_no_run_command_is_failed_with_the_reason(fleet: Fleet) -> None:
    repo = Repo.create(fleet.tmp / "repos" / "bare", {"README": "nothing to run"})
    await fleet.start_agent("pi-1")
    async with fleet.manager.client() as ctl:
        await ctl.add("bare", repo.url)
    info = await fleet.until("bare", lambda p: p["status"] == "failed", "bare to fail")
    assert "no run command" in info["reason"]


async def test_clone_failure_is_failed_with_gits_reason(fleet: Fleet) -> None:
    await fleet.start_agent("pi-1")
    missing = (fleet.tmp / "repos" / "missing").resolve().as_uri()
    async with fleet.manager.client() as ctl:
        await ctl.add("ghost", missing)
    info = await fleet.until("ghost", lambda p: p["status"] == "failed", "ghost to fail")
    assert "clone failed" in info["reason"]


async def test_crash_is_restarted_and_counted(fleet: Fleet) -> None:
    repo = Repo.create(fleet.tmp / "repos" / "crashy", {"README": "x"})
    await fleet.start_agent("pi-1")
    async with fleet.manager.client() as ctl:
        await ctl.add("crashy", repo.url, command="echo crashing; exit 3")
    info = await fleet.until(
        "crashy", lambda p: (p["restarts"] or 0) >= 2, "crashy to be restarted twice"
    )
    assert info["exit-code"] == 3


async def test_new_commit_is_deployed(fleet: Fleet) -> None:
    repo = Repo.create(fleet.tmp / "repos" / "web", {"version.txt": "1\n"})
    await fleet.start_agent("pi-1")
    command = "cat version.txt; exec sleep 1000"
    async with fleet.manager.client() as ctl:
        await ctl.add("web", repo.url, command=command)
    first = await fleet.until("web", lambda p: p["status"] == "running", "web to run")
    second_commit = repo.commit({"version.txt": "2\n"})
    # Its output comes in the reports after the one with its pid: wait for both.
    await fleet.until(
        "web",
        lambda p: (
            p["commit"] == second_commit
            and p["status"] == "running"
            and p["pid"] != first["pid"]
            and "2" in p["log-tail"]
        ),
        "the new commit to be deployed, restarted and print its version",
    )
    assert not alive(first["pid"])


async def test_stop_start_restart_and_reset(fleet: Fleet) -> None:
    repo = counter_repo(fleet.tmp)
    await fleet.start_agent("pi-1")
    async with fleet.manager.client() as ctl:
        await ctl.add("counter", repo.url, {"count": 0}, command=f"{PY} counter.py")
        running = await fleet.until(
            "counter",
            lambda p: p["status"] == "running" and p["persistent-variables"].get("count", 0) > 3,
            "counter to count",
        )
        await ctl.stop(["counter"])
        stopped = await fleet.until("counter", lambda p: p["status"] == "stopped", "a stop")
        assert not alive(running["pid"])
        kept = stopped["persistent-variables"]["count"]
        await ctl.start(["counter"])
        resumed = await fleet.until(
            "counter",
            lambda p: p["status"] == "running" and p["persistent-variables"]["count"] > kept,
            "counter to resume from its variables",
        )
        await ctl.restart(["counter"])
        await fleet.until(
            "counter",
            lambda p: p["status"] == "running" and p["pid"] != resumed["pid"],
            "a restart with a new process",
        )
        before = await fleet.until(
            "counter",
            lambda p: p["persistent-variables"]["count"] > 60,
            "counter to count past 60 (three seconds of counting)",
        )
        await ctl.reset(["counter"])
        # Counting again from the initial 0, under a new epoch: well below where it was.
        reset = await fleet.until(
            "counter",
            lambda p: (
                p["epoch"] > before["epoch"]
                and p["status"] == "running"
                and p["persistent-variables"]["count"] < before["persistent-variables"]["count"] / 2
            ),
            "counter to start again from its initial variables",
        )
        assert reset["epoch"] > running["epoch"]


async def test_bad_variables_file_keeps_the_last_good_value(fleet: Fleet) -> None:
    # The project writes good variables, then a half-written file once the test says so.
    writer = (
        "import json, os, time\n"
        "json.dump({'stage': 'good'}, open('project.variables', 'w'))\n"
        "while not os.path.exists('go'):\n"
        "    time.sleep(0.02)\n"
        "open('project.variables', 'w').write('{\"stage\": ')\n"
        "time.sleep(1000)\n"
    )
    repo = Repo.create(fleet.tmp / "repos" / "writer", {"writer.py": writer})
    await fleet.start_agent("pi-1")
    async with fleet.manager.client() as ctl:
        await ctl.add("writer", repo.url, command=f"{PY} writer.py")
    await fleet.until(
        "writer",
        lambda p: p["persistent-variables"] == {"stage": "good"},
        "the good variables to reach the manager",
    )
    (fleet.tmp / "nodes" / "pi-1" / "projects" / "writer" / "go").touch()
    info = await fleet.until(
        "writer",
        lambda p: "project.variables" in (p["reason"] or ""),
        "the agent to say the variables file is bad",
    )
    assert info["persistent-variables"] == {"stage": "good"}
    assert info["status"] == "running"


async def test_remove_stops_and_deletes_the_checkout(fleet: Fleet) -> None:
    repo = counter_repo(fleet.tmp)
    await fleet.start_agent("pi-1")
    async with fleet.manager.client() as ctl:
        await ctl.add("counter", repo.url, command=f"{PY} counter.py")
        info = await fleet.until("counter", lambda p: p["status"] == "running", "counter to run")
        await ctl.remove("counter", repo.url)
    checkout = fleet.tmp / "nodes" / "pi-1" / "projects" / "counter"

    async def gone() -> bool:
        return not checkout.exists() and not alive(info["pid"])

    await wait_for(gone, what="the process to end and the checkout to be deleted")


def copies_of(script: str, checkout: Path) -> set[int]:
    """The sessions running `script` in `checkout`: one per copy of a project on this machine.

    The agent starts each copy as the leader of its own session (`/bin/sh -c` and its child).
    """
    sessions = set()
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            here = proc.info["cwd"] == str(checkout)
            if here and script in " ".join(proc.info["cmdline"] or ()) and alive(proc.pid):
                sessions.add(os.getsid(proc.pid))
    return sessions


@pytest.mark.parametrize("change", ["remove", "reset"])
async def test_a_refused_report_stops_the_copy_before_the_poll_says_why(
    fleet: Fleet, change: str
) -> None:
    # The report of a removed (404) or reset (409) project can reach the manager before the
    # agent's long poll brings the change. Hold the polls' answers to force that order.
    repo = counter_repo(fleet.tmp)
    agent = await fleet.start_agent("pi-1")
    checkout = fleet.tmp / "nodes" / "pi-1" / "projects" / "counter"
    async with fleet.manager.client() as ctl:
        await ctl.add("counter", repo.url, {"count": 0}, command=f"{PY} counter.py")
        first = await fleet.until("counter", lambda p: p["status"] == "running", "counter to run")
        held: list[dict[str, Any]] = []
        agent.reconcile = held.append  # type: ignore[method-assign,assignment]
        if change == "remove":
            await ctl.remove("counter", repo.url)
        else:
            await ctl.reset(["counter"])
        local = agent.local["counter"]
        await agent.send_report(local)  # refused: the copy is stopped at once
        assert "counter" not in agent.local
        await wait_for(
            lambda: asyncio.sleep(0, not alive(first["pid"])), what="the refused copy to stop"
        )
        assert checkout.exists()  # kept until the manager says whether it comes back

        def changed(projects: dict[str, Any]) -> bool:
            if change == "remove":
                return "counter" not in projects
            return bool(projects["counter"]["epoch"] > first["epoch"])

        await wait_for(
            lambda: asyncio.sleep(0, held and changed(held[-1])),
            what="the poll answer that brings the change",
        )
        del agent.reconcile  # the agent's own method again
        agent.reconcile(held[-1])
    if change == "remove":
        await wait_for(lambda: asyncio.sleep(0, not checkout.exists()), what="the checkout to go")
        assert copies_of("counter.py", checkout) == set()
    else:
        again = await fleet.until(
            "counter",
            lambda p: p["status"] == "running" and p["epoch"] > first["epoch"],
            "counter to run again under the new epoch",
        )
        assert again["pid"] != first["pid"]
        assert copies_of("counter.py", checkout) == {again["pid"]}


async def test_sigterm_moves_the_project_before_node_timeout(tmp_path: Path) -> None:
    repo = counter_repo(tmp_path)
    # node-timeout 120 s: only the agent's clean leave can move the project within the test.
    async with running_manager(tmp_path / "manager", node_timeout=120.0) as manager:
        fleet = Fleet(manager, tmp_path)
        try:
            await fleet.start_agent("pi-1")
            async with manager.client() as ctl:
                await ctl.add("counter", repo.url, {"count": 0}, command=f"{PY} counter.py")
            first = await fleet.until(
                "counter",
                lambda p: (
                    p["status"] == "running" and p["persistent-variables"].get("count", 0) > 3
                ),
                "counter to count on pi-1",
            )
            await fleet.start_agent("pi-2")
            await fleet.stop_agent("pi-1")
            assert not alive(first["pid"])
            left = (await fleet.project("counter"))["persistent-variables"]["count"]
            moved = await fleet.until(
                "counter",
                lambda p: p["node"] == "pi-2" and p["status"] == "running",
                "counter to run on pi-2",
            )
            assert moved["persistent-variables"]["count"] >= left
        finally:
            for name in list(fleet.agents):
                await fleet.stop_agent(name)


async def test_exclusive_project_stops_when_its_node_loses_the_manager(tmp_path: Path) -> None:
    repo = counter_repo(tmp_path)
    async with running_manager(tmp_path / "manager", node_timeout=2.0) as manager:
        fleet = Fleet(manager, tmp_path)
        await fleet.start_agent("pi-1")
        async with manager.client() as ctl:
            await ctl.add("device", repo.url, command=f"{PY} counter.py", exclusive=True)
        info = await fleet.until("device", lambda p: p["status"] == "running", "device to run")
        agent = fleet.agents["pi-1"][0]
    # The manager is gone: within the lease the node stops the exclusive project itself.
    await wait_for(
        lambda: asyncio.sleep(0, result=not alive(info["pid"])),
        timeout=10,
        what="the exclusive project to stop",
    )
    assert agent.local["device"].lease_stopped
    await fleet.stop_agent("pi-1")


async def test_projects_keep_running_without_the_manager_and_the_agent_rejoins(
    tmp_path: Path,
) -> None:
    """The manager goes away, then a new one (fresh data dir) answers at the same address:
    while none answers, the project keeps running; the new manager does not know the node's
    token (401), so the node joins again with the password and follows the new manager,
    which has no projects for it."""
    repo = counter_repo(tmp_path)
    async with running_manager(tmp_path / "old", node_timeout=30.0) as old:
        fleet = Fleet(old, tmp_path)
        agent = await fleet.start_agent("pi-1")
        async with old.client() as ctl:
            await ctl.add("counter", repo.url, command=f"{PY} counter.py")
        info = await fleet.until("counter", lambda p: p["status"] == "running", "counter to run")
        port = int(old.url.rsplit(":", 1)[1])
    # No manager at all now: a non-exclusive project keeps running.
    await wait_for(
        lambda: asyncio.sleep(0, result=agent.clock() - agent.last_contact > 1.0),
        what="the agent to notice the manager is gone",
    )
    assert alive(info["pid"])
    async with running_manager(tmp_path / "new", node_timeout=30.0, port=port) as new:

        async def rejoined() -> bool:
            async with new.client() as ctl:
                return "pi-1" in await ctl.nodes()

        await wait_for(rejoined, timeout=30, what="the agent to join the new manager")
        await wait_for(
            lambda: asyncio.sleep(0, result=not alive(info["pid"])),
            what="the project unknown to the new manager to be stopped",
        )
        fleet.manager = new
        await fleet.stop_agent("pi-1")


async def test_new_commit_does_not_start_a_stopped_project(fleet: Fleet) -> None:
    repo = Repo.create(fleet.tmp / "repos" / "web", {"version.txt": "1\n"})
    await fleet.start_agent("pi-1")
    async with fleet.manager.client() as ctl:
        await ctl.add("web", repo.url, command="exec sleep 1000")
        running = await fleet.until("web", lambda p: p["status"] == "running", "web to run")
        await ctl.stop(["web"])
    await fleet.until("web", lambda p: p["status"] == "stopped", "web to stop")
    second = repo.commit({"version.txt": "2\n"})
    info = await fleet.until("web", lambda p: p["commit"] == second, "the new commit fetched")
    assert info["status"] == "stopped"
    assert info["pid"] is None
    assert not alive(running["pid"])

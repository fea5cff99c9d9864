"""`set` and `env` for real (DESIGN section 11): a manager, two agents, git repos, processes.

The counter prints one `start` line per process (its env, arguments, version and the count it
starts from), so the tests can see each restart, what it ran with, and that no count was lost.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Any

from tests.gitrepos import Repo, git
from tests.helpers import RunningManager, SimNode, wait_for
from tests.integration.test_agent import Fleet, alive

COUNTER = """\
import os, sys, time
from syncopate import variables

state = variables.load()
version = open("version.txt").read().strip()
start = [os.environ.get("GREETING"), sys.argv[1:], version, state.get("count", 0)]
print("start", repr(start), flush=True)
while True:
    state["count"] = state.get("count", 0) + 1
    variables.save(state)
    time.sleep(0.05)
"""
PY = sys.executable


def counter_repo(tmp: Path, name: str = "counter", version: str = "main") -> Repo:
    return Repo.create(tmp / "repos" / name, {"counter.py": COUNTER, "version.txt": version})


def environ(pid: int) -> dict[str, str]:
    """The environment a running process was started with, as the kernel holds it."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


async def starts(fleet: Fleet, name: str = "counter") -> list[list[Any]]:
    """The `start` lines the project printed (one per process), parsed."""
    async with fleet.manager.client() as ctl:
        lines = (await ctl.logs(name, 1000))["lines"]
    return [ast.literal_eval(line.split(" ", 1)[1]) for line in lines if line.startswith("start ")]


async def test_env_is_the_process_environment_beside_the_syncopate_ones(fleet: Fleet) -> None:
    repo = counter_repo(fleet.tmp)
    await fleet.start_agent("pi-1")
    env = {"GREETING": "hello world", "ODD": "a=b;$(x)"}
    async with fleet.manager.client() as ctl:
        await ctl.add("counter", repo.url, command=f"{PY} counter.py", env=env)
    info = await fleet.until("counter", lambda p: p["status"] == "running", "counter to run")
    assert info["env"] == env
    seen = environ(info["pid"])
    assert seen["GREETING"] == "hello world" and seen["ODD"] == "a=b;$(x)"
    assert seen["SYNCOPATE_PROJECT"] == "counter" and seen["SYNCOPATE_NODE"] == "pi-1"
    first = await wait_for(lambda: starts(fleet), what="the start line")
    assert first[0][0] == "hello world"


async def test_set_changes_each_field_in_place_keeping_the_variables(fleet: Fleet) -> None:
    repo = counter_repo(fleet.tmp)
    git(repo.path, "checkout", "-q", "-b", "other")
    repo.commit({"version.txt": "other"})
    git(repo.path, "checkout", "-q", "main")
    mirror = counter_repo(fleet.tmp, "mirror", version="mirror")
    await fleet.start_agent("pi-1")
    async with fleet.manager.client() as ctl:
        await ctl.add("counter", repo.url, command=f"{PY} counter.py one", env={"GREETING": "a"})
        info = await fleet.until(
            "counter",
            lambda p: p["status"] == "running" and p["persistent-variables"].get("count", 0) > 5,
            "counter to run and count",
        )
        node = info["node"]
        await fleet.start_agent("pi-2")  # a second place it could go, but should not
        changes: list[tuple[dict[str, Any], Any]] = [
            ({"env": {"GREETING": "b"}}, lambda s: s[0] == "b"),
            ({"command": f"{PY} counter.py two"}, lambda s: s[1] == ["two"]),
            ({"ref": "other"}, lambda s: s[2] == "other"),
            ({"url": mirror.url, "ref": ""}, lambda s: s[2] == "mirror"),
        ]
        for change, shows in changes:
            before = await fleet.project("counter")
            answer = await ctl.set_project("counter", **change)
            assert sorted(answer["changed"]) == sorted(change)

            async def restarted(shows: Any = shows) -> list[Any] | None:
                seen = await starts(fleet)
                return seen[-1] if seen and shows(seen[-1]) else None

            start = await wait_for(restarted, timeout=20, what=f"a restart after {change}")
            # The new process counts on from where the old one was: nothing lost.
            assert start[3] >= before["persistent-variables"]["count"]

            def new_process(p: dict[str, Any], old: Any = before["pid"]) -> bool:
                return bool(p["status"] == "running" and p["pid"] != old)

            after = await fleet.until("counter", new_process, "the new process to be reported")
            assert after["node"] == node
            assert not alive(before["pid"])
        # Once per change, and once at the start.
        assert len(await starts(fleet)) == 1 + len(changes)
        running = await fleet.project("counter")
        assert running["project-url"] == mirror.url
        assert running["ref"] is None and running["env"] == {"GREETING": "b"}

        # What the process need not see changes without a restart; the same again is no change.
        answer = await ctl.set_project("counter", ram=1, exclusive=True)
        assert answer["changed"] == ["exclusive", "ram"]
        again = await ctl.set_project("counter", ram=1, exclusive=True)
        assert again["changed"] == [] and "nothing changed" in again["request-information"]
        final = await fleet.project("counter")
        assert final["restart"] == running["restart"] and final["pid"] == running["pid"]
        assert final["node"] == node and final["ram"] == 1 and final["exclusive"] is True
        history = final["history"]
        assert [h["fields"] for h in history] == [
            ["env"],
            ["command"],
            ["ref"],
            ["ref", "url"],
            ["exclusive", "ram"],
        ]
        assert all(h["by"] and h["at"] for h in history)


async def test_vars_writes_a_variable_into_two_projects_which_restart_with_it(
    fleet: Fleet,
) -> None:
    repo = counter_repo(fleet.tmp)
    await fleet.start_agent("pi-1")
    async with fleet.manager.client() as ctl:
        for name in ("one", "two"):
            await ctl.add(name, repo.url, {"count": 0}, command=f"{PY} counter.py")
        before = {}
        for name in ("one", "two"):
            before[name] = await fleet.until(
                name,
                lambda p: p["status"] == "running" and p["persistent-variables"]["count"] > 3,
                f"{name} to count",
            )
        answer = await ctl.set_variables(["one", "two"], {"mode": "fast", "count": 1000})
        assert sorted(answer["projects"]) == ["one", "two"]
    for name in ("one", "two"):
        info = await fleet.until(
            name,
            lambda p: (
                p["status"] == "running"
                and p["persistent-variables"].get("mode") == "fast"
                and p["persistent-variables"]["count"] > 1000
            ),
            f"{name} to run again with the written variables",
        )
        assert info["epoch"] > before[name]["epoch"] and info["pid"] != before[name]["pid"]
        assert info["history"][-1]["fields"] == ["variables"]
        assert (await starts(fleet, name))[-1][3] == 1000


async def test_set_ram_moves_it_only_when_it_no_longer_fits(manager: RunningManager) -> None:
    small = await SimNode.join(manager.url, "pi-1", ram=1000)
    big = await SimNode.join(manager.url, "pi-2", ram=4000)
    try:
        async with manager.client() as ctl:
            await ctl.add("svc", "https://example.com/svc.git", ram=100, env={"MODE": "x"})
            assigned = await small.poll()
            assert assigned["svc"]["environment-variables"] == {"MODE": "x"}
            await small.report("svc", variables={"count": 7})
            stays = await ctl.set_project("svc", ram=500)
            info = stays["projects"]["svc"]
            assert info["node"] == "pi-1" and info["moving-to"] is None
            assert info["restart"] == assigned["svc"]["restart"]  # nothing for the process
            moves = await ctl.set_project("svc", ram=2000)
            assert moves["projects"]["svc"]["moving-to"] == "pi-2"
            assert (await small.poll())["svc"]["desired"] == "stopped"
            await small.report("svc", status="stopped", variables={"count": 9})

            async def on_big() -> dict[str, Any] | None:
                seen = await big.poll()
                return seen.get("svc")

            moved = await wait_for(on_big, what="svc to be assigned to pi-2")
            assert moved["persistent-variables"] == {"count": 9}
            assert moved["environment-variables"] == {"MODE": "x"}
    finally:
        await small.close()
        await big.close()

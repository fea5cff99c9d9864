"""Issue 12: kill -9 the agent at random instants during start, stop and move, 20 times.

A real manager and two agents as processes: `a`, which is killed in every cycle, and `b`, which
is not. Each cycle makes one change (restart, stop then start, stop or start, reset, add, remove,
move every project off one node), kills agent `a` at a random instant 0-400 ms later (or the
moment it spawns a project process, before it can record it), starts a new agent `a` on the same
data dir (sometimes killing that one too, the moment it starts its first project), and waits until
the fleet has settled.

All the while a thread scans /proc every 50 ms for the processes of this fleet (their environment
names this manager and a project). A copy is one process group. Never two copies of one project
on one node at any sample; after each cycle has settled, no orphan: every process of a node is of
a project the manager places there, in the process group the manager reports for it.

The seed is fixed (SYNCOPATE_KILL_SEED overrides it); `pytest -s` shows the tally.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from syncopate.client import ManagerClient
from tests.gitrepos import Repo
from tests.helpers import RunningManager, running_manager, wait_for
from tests.integration.test_agent import COUNTER, PY
from tests.integration.test_agent_crash import agents, start_agent

pytestmark = pytest.mark.slow

# syncopate.node.leftovers.MARKER, spelled out so that this test also runs against agents from
# before the marker (to show it catches what the marker fixed).
MARKER = "SYNCOPATE_AGENT_HOME"
SEED = int(os.environ.get("SYNCOPATE_KILL_SEED", "20261202"))
CYCLES = 20
SAMPLE_EVERY = 0.05  # seconds between /proc scans
KILL_WITHIN = 0.4  # the kill comes at a random instant this long after the action, at most
SPAWN_KILL = 0.3  # share of cycles that kill at the first project spawn (if one comes in time)
KILL_AGAIN = 0.3  # share of cycles that also kill the new agent at its first project spawn
SETTLE = 25.0  # seconds for the fleet to settle after a cycle's faults
NO_ORPHAN_WITHIN = 3.0  # seconds for what a node stops (a removed project) to be gone
ACTIONS = ("restart", "stop-start", "toggle", "reset", "add", "remove", "move")


def counter_command(name: str) -> str:
    """The counter; every project but p0 with its output to /dev/null.

    A project that writes to the agent's pipe ends soon after the agent (EPIPE), so it cannot
    outlive a killed agent for long; a quiet one (a daemon that logs little) runs on, and is
    what a new agent must find and end. p0 keeps the output, as most projects do.
    """
    return f"{PY} counter.py" if name == "p0" else f"{PY} counter.py >/dev/null"


@dataclass(frozen=True)
class Seen:
    """One live process of a project of this fleet."""

    pid: int
    pgid: int
    node: str
    project: str
    marker: str | None


def scan(manager_url: str) -> list[Seen]:
    """The live processes whose environment names this manager and a project."""
    found = []
    for proc in psutil.process_iter():
        try:
            env = proc.environ()
            project = env.get("SYNCOPATE_PROJECT")
            if not project or env.get("SYNCOPATE_MANAGER") != manager_url:
                continue
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            pgid = os.getpgid(proc.pid)
        except (psutil.Error, ProcessLookupError):
            continue  # gone, or not ours
        found.append(Seen(proc.pid, pgid, env.get("SYNCOPATE_NODE", ""), project, env.get(MARKER)))
    return found


def still_alive(seen: list[Seen]) -> list[Seen]:
    """Those of `seen` alive now (a scan takes a while: it may see a group that ended as the
    next one started; two copies count only when both are alive at once)."""
    alive = []
    for one in seen:
        try:
            if psutil.Process(one.pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(one)
        except psutil.Error:
            continue
    return alive


def groups(seen: list[Seen]) -> dict[tuple[str, str], set[int]]:
    """Process groups by (node, project)."""
    by_key: dict[tuple[str, str], set[int]] = defaultdict(set)
    for one in seen:
        by_key[(one.node, one.project)].add(one.pgid)
    return by_key


@dataclass
class Sampler:
    """Scans /proc every SAMPLE_EVERY seconds in a thread; keeps the most copies it saw."""

    manager_url: str
    cycle: int = 0  # set by the test: which cycle the samples belong to
    samples: int = 0
    per_node: dict[tuple[str, str], int] = field(default_factory=dict)
    fleet: dict[str, int] = field(default_factory=dict)
    # Two copies (groups) of one project alive at once on one node, or anywhere: each set of
    # groups once, with the cycle it was first seen in.
    doubles: dict[str, int] = field(default_factory=dict)
    fleet_doubles: dict[str, int] = field(default_factory=dict)
    error: BaseException | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, name="copy sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.sample()
                self._stop.wait(SAMPLE_EVERY)
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc

    def sample(self) -> None:
        seen = scan(self.manager_url)
        self.samples += 1
        cycle = self.cycle
        by_key = groups(seen)
        suspects = {key for key, pgids in by_key.items() if len(pgids) > 1}
        by_project: dict[str, set[tuple[str, int]]] = defaultdict(set)
        for one in seen:
            by_project[one.project].add((one.node, one.pgid))
        if suspects or any(len(copies) > 1 for copies in by_project.values()):
            # Confirm with a second look: which of them are alive together now.
            seen = still_alive(seen)
            by_key = groups(seen)
            by_project = defaultdict(set)
            for one in seen:
                by_project[one.project].add((one.node, one.pgid))
        for key, pgids in by_key.items():
            self.per_node[key] = max(self.per_node.get(key, 0), len(pgids))
            if len(pgids) > 1:
                self.doubles.setdefault(f"{key[1]} on {key[0]}: groups {sorted(pgids)}", cycle)
        for project, copies in by_project.items():
            self.fleet[project] = max(self.fleet.get(project, 0), len(copies))
            if len(copies) > 1:
                self.fleet_doubles.setdefault(f"{project}: (node, group) {sorted(copies)}", cycle)


def kill_at_first_spawn(agent: subprocess.Popen[str], within: float) -> tuple[int, str] | None:
    """SIGKILL `agent` the moment its main thread (the event loop's) has a child running a
    project, that is between spawning it and recording it, or soon after; that child and its
    project. None (and no kill) when no project process appears within `within` seconds.

    Blocking: call it in a thread. It only reads /proc/PID/task/PID/children (cheap), so it
    can look every half millisecond.
    """
    children = Path(f"/proc/{agent.pid}/task/{agent.pid}/children")
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            pids = children.read_text(encoding="ascii").split()
        except OSError:
            return None  # the agent ended
        for pid in pids:
            try:
                env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            for item in env:
                if item.startswith(b"SYNCOPATE_PROJECT="):
                    os.kill(agent.pid, signal.SIGKILL)
                    return int(pid), item.partition(b"=")[2].decode()
        time.sleep(0.0005)
    return None


def recorded(data_dir: Path, project: str, pid: int) -> bool:
    """Whether the agent of `data_dir` had recorded `pid` as `project`'s process."""
    try:
        return f'"pid": {pid},' in (data_dir / "running" / f"{project}.json").read_text()
    except OSError:
        return False


def connected(agent: subprocess.Popen[str], manager_url: str) -> bool:
    """Whether `agent` has a connection to the manager: it has ended what an earlier agent
    left running (that comes first) and polls."""
    port = int(manager_url.rsplit(":", 1)[1])
    try:
        return any(
            c.raddr and c.raddr.port == port
            for c in psutil.Process(agent.pid).net_connections("tcp")
        )
    except psutil.Error:
        return False


def wanted_copies(status: dict[str, dict[str, Any]]) -> dict[tuple[str, str], int] | None:
    """(node, project) -> the pid the manager reports, once the fleet has settled: every
    project it wants running is running with a pid on its node, every other one is stopped;
    None before."""
    wanted = {}
    for name, info in status.items():
        if info["desired"] == "running":
            if info["moving-to"] or not info["node"] or info["status"] != "running":
                return None
            if not info["pid"]:
                return None
            wanted[(info["node"], name)] = info["pid"]
        elif info["status"] != "stopped" or info["moving-to"]:
            return None
    return wanted


def mismatches(
    seen: list[Seen], wanted: dict[tuple[str, str], int], homes: dict[str, str]
) -> list[str]:
    """What runs and should not: a process of a project not placed on its node (or not wanted
    running), in another group than the manager reports, or with another node's marker."""
    wrong = []
    for one in seen:
        pid = wanted.get((one.node, one.project))
        if pid is None:
            wrong.append(f"{one.project} on {one.node} (pid {one.pid}): not placed there")
        elif one.pgid != pid:
            wrong.append(
                f"{one.project} on {one.node} (pid {one.pid}): group {one.pgid}, "
                f"the manager reports {pid}"
            )
        if one.marker is not None and one.marker != homes.get(one.node):
            wrong.append(f"{one.project} (pid {one.pid}): node {one.node}, marker {one.marker}")
    return wrong


@dataclass
class Tally:
    actions: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    kills: int = 0
    spawn_kills: int = 0  # killed the moment it spawned a project process
    before_record: int = 0  # ... and before it had recorded it
    a_busy: int = 0  # kills that left project processes of a running
    orphans: dict[int, str] = field(default_factory=dict)  # by process group
    settle: list[float] = field(default_factory=list)


async def test_agent_killed_at_random_instants_never_leaves_two_copies(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    print(f"\nseed {SEED} (set SYNCOPATE_KILL_SEED to change it)")
    began = time.monotonic()
    repos = [
        Repo.create(tmp_path / "repos" / f"counter{i}", {"counter.py": COUNTER}) for i in range(3)
    ]
    tally = Tally()
    async with (
        running_manager(tmp_path / "manager", node_timeout=30.0) as manager,
        agents() as started,
        manager.client() as ctl,
    ):
        try:
            with Sampler(manager.url) as sampler:
                await fleet_under_fire(ctl, manager, started, rng, tmp_path, repos, sampler, tally)
        finally:
            # What an agent before the fix may leave behind, whatever the outcome.
            for one in scan(manager.url):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(one.pgid, signal.SIGKILL)
    took = time.monotonic() - began
    per_node = max(sampler.per_node.values(), default=0)
    fleet = max(sampler.fleet.values(), default=0)
    print(
        f"seed {SEED}: {CYCLES} cycles in {took:.1f}s, {sampler.samples} samples; "
        f"actions {dict(tally.actions)}; {tally.kills} kills of agent a, {tally.spawn_kills} "
        f"at a project spawn, {tally.before_record} of them before the record, "
        f"{tally.a_busy} leaving projects of a running; "
        f"most copies of one project: {per_node} on one node, {fleet} fleet-wide; "
        f"{len(sampler.doubles)} sets of copies side by side on one node; "
        f"orphans {len(tally.orphans)}; settling took up to {max(tally.settle):.2f}s"
    )
    assert sampler.error is None, f"the sampler failed: {sampler.error!r}"
    assert sampler.samples > CYCLES
    assert not sampler.doubles, f"seed {SEED}: two copies on one node: {sampler.doubles}"
    assert not tally.orphans, f"seed {SEED}: orphans: {list(tally.orphans.values())}"
    assert not sampler.fleet_doubles, (
        f"seed {SEED}: two copies in the fleet: {sampler.fleet_doubles}"
    )
    assert per_node == 1  # the sampler did see the projects


async def fleet_under_fire(
    ctl: ManagerClient,
    manager: RunningManager,
    started: list[subprocess.Popen[str]],
    rng: random.Random,
    tmp: Path,
    repos: list[Repo],
    sampler: Sampler,
    tally: Tally,
) -> None:
    homes = {name: str((tmp / name).resolve()) for name in ("a", "b")}

    def new_agent_a() -> subprocess.Popen[str]:
        return start_agent(started, manager, tmp / "a", "a")

    start_agent(started, manager, tmp / "b", "b")
    agent_a = new_agent_a()

    async def both_alive() -> bool:
        nodes = await ctl.nodes()
        return all(nodes.get(n, {}).get("status") == "alive" for n in ("a", "b"))

    await wait_for(both_alive, timeout=30, what="nodes a and b to join")
    names = [f"p{i}" for i in range(3)]
    for name, repo in zip(names, repos, strict=True):
        await ctl.add(name, repo.url, {"count": 0}, command=counter_command(name))
    added = len(names)
    await settle(ctl, agent_a, manager.url, homes, sampler, tally, cycle=0)

    async def killed(agent: subprocess.Popen[str], hit: tuple[int, str] | None) -> None:
        """Count a kill of agent a (`hit`: at the spawn of that process of that project)."""
        await asyncio.to_thread(agent.wait)
        tally.kills += 1
        tally.a_busy += any(one.node == "a" for one in scan(manager.url))
        if hit is not None:
            tally.spawn_kills += 1
            tally.before_record += not recorded(tmp / "a", hit[1], hit[0])

    for cycle in range(1, CYCLES + 1):
        sampler.cycle = cycle
        status = await ctl.status()
        running = sorted(n for n, p in status.items() if p["desired"] == "running")
        stopped = sorted(n for n, p in status.items() if p["desired"] == "stopped")
        on = {n: sorted(p for p in running if status[p]["node"] == n) for n in ("a", "b")}
        action = rng.choice(ACTIONS)
        # Drawn every cycle whatever is used, so one seed gives one sequence of draws.
        pick, delay = rng.random(), rng.uniform(0.0, KILL_WITHIN)
        at_spawn, again = rng.random() < SPAWN_KILL, rng.random() < KILL_AGAIN
        if action in ("restart", "stop-start", "reset") and not running:
            action = "toggle"
        if action == "remove" and len(status) <= 2:
            action = "add"
        if action == "move" and not running:
            action = "toggle"
        # Projects on a are the interesting ones: pick among them when there are any.
        among = on["a"] or running
        target = among[int(pick * len(among))] if among else None
        tally.actions[action] += 1
        # `target` is None only when nothing runs, and then no action below stops or restarts.
        if action == "restart":
            assert target is not None
            await ctl.restart([target])
        elif action == "stop-start":
            assert target is not None
            await ctl.stop([target])
            await ctl.start([target])
        elif action == "toggle":
            if stopped:
                await ctl.start([stopped[int(pick * len(stopped))]])
            else:
                assert target is not None
                await ctl.stop([target])
        elif action == "reset":
            assert target is not None
            await ctl.reset([target])
        elif action == "add":
            repo = repos[int(pick * len(repos))]
            name = f"p{added}"
            await ctl.add(name, repo.url, {"count": 0}, command=counter_command(name))
            added += 1
        elif action == "remove":
            name = sorted(status)[int(pick * len(status))]
            await ctl.remove(name, status[name]["project-url"])
        else:  # move: every project off the node that has more of them, to the other one
            source = "a" if len(on["a"]) >= len(on["b"]) else "b"
            await ctl.drain(source)
            await ctl.undrain(source)  # the moves begun go on; nothing moves back
        # The fault: kill -9 agent a at a random instant, or as it spawns a project process.
        if at_spawn:  # at the first project spawn, or at the random instant if none came
            hit = await asyncio.to_thread(kill_at_first_spawn, agent_a, delay)
        else:
            hit = None
            await asyncio.sleep(delay)
        if hit is None:
            agent_a.kill()
        await killed(agent_a, hit)
        agent_a = new_agent_a()
        if again and await starts_on_a(ctl):
            # The new agent killed too, the moment it starts its first project.
            hit = await asyncio.to_thread(kill_at_first_spawn, agent_a, 5.0)
            if hit is not None:
                await killed(agent_a, hit)
                agent_a = new_agent_a()
        await settle(ctl, agent_a, manager.url, homes, sampler, tally, cycle)


async def starts_on_a(ctl: ManagerClient) -> bool:
    """Whether the manager wants a project running on a (a new agent a starts it)."""
    return any(
        info["node"] == "a" and info["desired"] == "running" and not info["moving-to"]
        for info in (await ctl.status()).values()
    )


async def settle(
    ctl: ManagerClient,
    agent: subprocess.Popen[str],
    manager_url: str,
    homes: dict[str, str],
    sampler: Sampler,
    tally: Tally,
    cycle: int,
) -> None:
    """Wait until agent a polls and the manager sees the fleet settled, then until what runs
    is what it reports (a project just removed or stopped may take a poll to end); what
    outlives that is an orphan, noted by process group."""
    began = time.monotonic()

    async def manager_settled() -> dict[tuple[str, str], int] | None:
        if not connected(agent, manager_url):
            return None
        return wanted_copies(await ctl.status())

    wanted = await wait_for(
        manager_settled, timeout=SETTLE, interval=0.05, what=f"cycle {cycle} to settle"
    )
    tally.settle.append(time.monotonic() - began)

    async def only_wanted() -> bool:
        nonlocal wanted
        wanted = wanted_copies(await ctl.status()) or wanted
        seen = scan(manager_url)
        if mismatches(seen, wanted, homes):
            return False
        return {(one.node, one.project) for one in seen} == set(wanted)

    with contextlib.suppress(AssertionError):
        await wait_for(only_wanted, timeout=NO_ORPHAN_WITHIN, interval=0.05)
        return
    seen = scan(manager_url)
    for one in seen:
        if mismatches([one], wanted, homes):
            tally.orphans.setdefault(
                one.pgid, f"cycle {cycle}: {'; '.join(mismatches([one], wanted, homes))}"
            )

    async def nothing_missing() -> bool:
        # Liveness, not safety: what the manager reports running must come to run, but a
        # restarted agent takes its time to start and report on a loaded machine, so this
        # waits up to SETTLE where the orphan check above allows NO_ORPHAN_WITHIN.
        nonlocal wanted
        wanted = wanted_copies(await ctl.status()) or wanted
        return not set(wanted) - {(one.node, one.project) for one in scan(manager_url)}

    with contextlib.suppress(AssertionError):
        await wait_for(nothing_missing, timeout=SETTLE, interval=0.1)
    missing = set(wanted) - {(one.node, one.project) for one in scan(manager_url)}
    assert not missing, f"cycle {cycle}: the manager reports {missing} running; nothing runs"

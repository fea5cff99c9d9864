"""A real network partition (issue 12): agents in a network namespace are cut off and healed.

The manager runs in the root namespace, on the root end of a veth pair; two agents run inside
a namespace behind it and one in the root namespace, to take over. An exclusive project and a
non-exclusive one run on the namespaced nodes. The link is cut (packets dropped, connections
left half open, so a long-poll answer held through the cut arrives late, just before the fresh
one), the manager fails both projects over to the root node, and the link heals. Through it all
a sampler counts the copies of each project per node from /proc every 100 ms:

- the exclusive project never runs twice in the fleet;
- no node ever runs two copies of one project;
- after the heal, each healed node runs exactly what the manager says it runs (one copy with the
  pid the manager knows, or none), within a deadline.

Two ways to cut (tests/netns.py), both parametrized:
- "drop": blackhole routes on both sides; connections stay half open, so the long-poll answer
  the manager sent into the cut is retransmitted and arrives after the heal, just before the
  fresh one. On the agent before the fix for issue 12 this started the exclusive project twice
  on its old node right after the heal (cycle 1).
- "link-down": the veth's root end set down. Before the fix, cycle 1 healed cleanly, and moving
  the projects back to the healed nodes (the drain below) started each of them twice there.

The root node is drained for a moment before each cycle so both projects are back on the
namespaced nodes; a cycle takes about 10 s, the test about 30-40 s per cut mode.

Needs root and `ip netns` (CI runs as root); skipped otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from syncopate.client import ManagerClient
from tests.gitrepos import Repo
from tests.helpers import PASSWORD, wait_for
from tests.netns import NetNamespace, NetnsUnavailable
from tests.procs import ManagerProcess

pytestmark = pytest.mark.slow

NODE_TIMEOUT = 3.0  # the lease is 0.6 of it; a long poll is held for half of it
SAMPLE_EVERY = 0.1
CYCLES = 2
AGREED_FOR = 2.0  # seconds the healed nodes must keep matching the manager to be settled
INNER_NODES = ("ns-a", "ns-b")
ROOT_NODE = "root"
EXCLUSIVE, PLAIN = "device", "worker"


# counting copies ------------------------------------------------------------------------------
def copies(marker: str) -> dict[tuple[str, str], set[int]]:
    """Live project processes started by this test's agents, as {(node, project): sessions}.

    Each copy of a project is one process session (`sh -c` and what it runs); the agents' data
    dirs are under `marker`, so SYNCOPATE_VARIABLES tells this test's processes from others.
    """
    found: dict[tuple[str, str], set[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read()
            if marker.encode() not in environ:
                continue
            with open(f"/proc/{pid}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
            if state in (b"Z", b"X"):
                continue
            sid = os.getsid(pid)
        except (OSError, IndexError):
            continue  # ended meanwhile, or not ours to read
        env = dict(
            item.decode(errors="replace").split("=", 1)
            for item in environ.split(b"\0")
            if b"=" in item
        )
        if not env.get("SYNCOPATE_VARIABLES", "").startswith(marker):
            continue
        key = (env.get("SYNCOPATE_NODE", "?"), env.get("SYNCOPATE_PROJECT", "?"))
        found.setdefault(key, set()).add(sid)
    return found


@dataclass
class Sample:
    at: float
    phase: str
    copies: dict[tuple[str, str], set[int]]

    def describe(self) -> str:
        shown = ", ".join(
            f"{node}/{project}={len(sids)}{sorted(sids)}"
            for (node, project), sids in sorted(self.copies.items())
        )
        return f"{self.at:7.2f}s [{self.phase}] {shown or '-'}"


@dataclass
class Sampler:
    """Counts copies every SAMPLE_EVERY seconds in a thread, whatever the event loop does."""

    marker: str
    exclusive: str
    phase: str = "setup"
    samples: list[Sample] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _started: float = field(default_factory=time.monotonic)

    def run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            sample = Sample(time.monotonic() - self._started, self.phase, copies(self.marker))
            self.samples.append(sample)
            self.check(sample)
            next_at += SAMPLE_EVERY
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def check(self, sample: Sample) -> None:
        fleet_wide = sum(
            len(sids) for (_, project), sids in sample.copies.items() if project == self.exclusive
        )
        if fleet_wide > 1:
            self.violations.append(f"exclusive project running {fleet_wide}x: {sample.describe()}")
        for (node, project), sids in sample.copies.items():
            if len(sids) > 1:
                self.violations.append(f"{node} runs {project} {len(sids)}x: {sample.describe()}")

    @contextmanager
    def running(self) -> Iterator[Sampler]:
        thread = threading.Thread(target=self.run, name="copy-sampler", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(timeout=5)

    def report(self, last: int = 0) -> str:
        """Samples where the copies changed (all of them, or the last `last` changes)."""
        changes: list[Sample] = []
        for sample in self.samples:
            if (
                not changes
                or sample.copies != changes[-1].copies
                or sample.phase != changes[-1].phase
            ):
                changes.append(sample)
        return "\n".join(s.describe() for s in changes[-last:])


# processes ------------------------------------------------------------------------------------
class ManagerOn(ManagerProcess):
    """The manager subprocess, listening on `host` (the root end of the veth)."""

    def __init__(self, data_dir: Path, host: str, **options: Any) -> None:
        super().__init__(data_dir, **options)
        self.host = host

    def command(self) -> list[str]:
        args = super().command()
        args[args.index("--host") + 1] = self.host
        return args


@dataclass
class Agents:
    tmp: Path
    url: str
    pin: str  # the manager is beyond loopback: HTTPS with its own certificate, pinned
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, ns: NetNamespace | None) -> None:
        data_dir = self.tmp / "nodes" / name
        data_dir.mkdir(parents=True)
        command = [
            sys.executable, "-m", "syncopate.node", self.url, "--name", name,
            "--data-dir", str(data_dir), "--interval", "0.2", "--sync-interval", "30",
            "--log-level", "debug", "--fingerprint", self.pin,
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCOPATE_")}
        env["SYNCOPATE_PASSWORD"] = PASSWORD
        with open(self.tmp / f"agent-{name}.log", "wb") as log:
            self.procs[name] = subprocess.Popen(
                ns.wrap(command) if ns is not None else command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def log_tail(self, name: str, lines: int = 40) -> str:
        text = (self.tmp / f"agent-{name}.log").read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def kill_leftovers(marker: str) -> None:
    """End the process groups of any project copy the agents left behind."""
    for sids in copies(marker).values():
        for sid in sids:
            with contextlib.suppress(OSError):
                os.killpg(sid, signal.SIGKILL)


@asynccontextmanager
async def partitioned_fleet(tmp_path: Path) -> AsyncIterator[tuple[NetNamespace, str, Agents]]:
    """A namespace, the manager on the veth's root end, and an Agents (none started yet)."""
    try:
        ns = NetNamespace.create()
    except NetnsUnavailable as exc:
        pytest.skip(f"needs root and ip netns: {exc}")
    marker = str(tmp_path / "nodes") + os.sep
    manager = ManagerOn(
        tmp_path / "manager", ns.root_address, password=PASSWORD, node_timeout=NODE_TIMEOUT
    )
    agents: Agents | None = None
    try:
        url = manager.start()
        agents = Agents(tmp_path, url, manager.controller_json()["fingerprint"])
        yield ns, manager.token, agents
    finally:
        ns.heal()
        if agents is not None:
            await asyncio.to_thread(agents.stop_all)
        manager.stop()
        kill_leftovers(marker)
        ns.delete()


# the manager's view ---------------------------------------------------------------------------
async def projects(ctl: ManagerClient) -> dict[str, dict[str, Any]]:
    return await ctl.status([EXCLUSIVE, PLAIN])


def on(info: dict[str, Any], nodes: tuple[str, ...]) -> bool:
    return info["node"] in nodes and info["status"] == "running" and bool(info["pid"])


async def wait_until_placed(
    ctl: ManagerClient, sampler: Sampler, nodes: tuple[str, ...], what: str
) -> None:
    async def placed() -> dict[str, dict[str, Any]] | None:
        assert not sampler.violations, "\n".join(sampler.violations[:20])
        seen = await projects(ctl)
        return seen if all(on(info, nodes) for info in seen.values()) else None

    await wait_for(placed, timeout=30, interval=0.1, what=what)


def matches_the_manager(
    found: dict[tuple[str, str], set[int]], seen: dict[str, dict[str, Any]]
) -> bool:
    """Every namespaced node runs exactly the copies the manager says it runs."""
    for node in INNER_NODES:
        for name, info in seen.items():
            assigned = info["node"] == node and info["status"] == "running" and info["pid"]
            wanted = {info["pid"]} if assigned else set()
            if found.get((node, name), set()) != wanted:
                return False
    return True


@pytest.mark.parametrize("cut_mode", ["drop", "link-down"])
async def test_partition_and_heal_never_run_a_project_twice(tmp_path: Path, cut_mode: str) -> None:
    exclusive_repo = Repo.create(tmp_path / "repos" / EXCLUSIVE, {"README": "a device"})
    plain_repo = Repo.create(tmp_path / "repos" / PLAIN, {"README": "a worker"})
    marker = str(tmp_path / "nodes") + os.sep
    sampler = Sampler(marker, EXCLUSIVE)
    async with partitioned_fleet(tmp_path) as (ns, token, agents):
        ctl = ManagerClient(agents.url, token=token, fingerprint=agents.pin)
        try:
            with sampler.running():
                for name in INNER_NODES:
                    agents.start(name, ns)

                async def joined(names: tuple[str, ...]) -> bool:
                    nodes = await ctl.nodes()
                    return all(nodes.get(n, {}).get("status") == "alive" for n in names)

                await wait_for(lambda: joined(INNER_NODES), timeout=30, what="ns agents to join")
                await ctl.add(
                    EXCLUSIVE, exclusive_repo.url, command="exec sleep 1000", exclusive=True
                )
                await ctl.add(PLAIN, plain_repo.url, command="exec sleep 1000")
                await wait_until_placed(
                    ctl, sampler, INNER_NODES, "both projects to run in the namespace"
                )
                agents.start(ROOT_NODE, None)
                await wait_for(lambda: joined((ROOT_NODE,)), timeout=30, what="root agent to join")

                for cycle in range(1, CYCLES + 1):
                    await put_back_in_the_namespace(ctl, sampler, cycle)
                    sampler.phase = f"{cycle}: cut"
                    ns.cut(cut_mode)
                    await wait_until_placed(
                        ctl,
                        sampler,
                        (ROOT_NODE,),
                        f"cycle {cycle}: the root node to take both over",
                    )
                    sampler.phase = f"{cycle}: healed"
                    ns.heal()
                    await settled(ctl, sampler, cycle)
                    assert not sampler.violations, "\n".join(sampler.violations[:20])
        except BaseException:
            print("copies per sample (changes only):\n" + sampler.report(last=200))
            for name in agents.procs:
                print(f"--- agent {name} (last lines)\n{agents.log_tail(name)}")
            raise
        finally:
            await ctl.close()
    print("copies per sample (changes only):\n" + sampler.report())
    assert not sampler.violations, "\n".join(sampler.violations[:20])


async def put_back_in_the_namespace(ctl: ManagerClient, sampler: Sampler, cycle: int) -> None:
    """Both projects on the namespaced nodes (drain the root node for a moment if needed)."""
    seen = await projects(ctl)
    if all(on(info, INNER_NODES) for info in seen.values()):
        return
    sampler.phase = f"{cycle}: drain root"
    await ctl.drain(ROOT_NODE)
    await wait_until_placed(ctl, sampler, INNER_NODES, f"cycle {cycle}: both back in the namespace")
    await ctl.undrain(ROOT_NODE)
    sampler.phase = f"{cycle}: undrained"


async def settled(ctl: ManagerClient, sampler: Sampler, cycle: int) -> None:
    """The healed nodes are back and run what the manager says, and keep doing so a while."""
    agreed_since: float | None = None
    last: tuple[dict[tuple[str, str], set[int]], dict[str, Any]] = ({}, {})

    async def agreed_for_a_second() -> bool:
        nonlocal agreed_since, last
        # Fail at once on two copies: waiting would not make it right.
        assert not sampler.violations, "\n".join(sampler.violations[:20])
        nodes = await ctl.nodes()
        if any(nodes.get(n, {}).get("status") != "alive" for n in INNER_NODES):
            agreed_since = None
            return False  # not heard from yet: a late answer may still be on its way
        seen = await projects(ctl)
        found = copies(sampler.marker)
        last = (found, {n: (i["node"], i["status"], i["pid"]) for n, i in seen.items()})
        if not matches_the_manager(found, seen):
            agreed_since = None
            return False
        now = time.monotonic()
        agreed_since = agreed_since or now
        return now - agreed_since >= AGREED_FOR

    try:
        await wait_for(agreed_for_a_second, timeout=20, interval=SAMPLE_EVERY)
    except AssertionError as exc:
        if sampler.violations:
            raise
        raise AssertionError(
            f"cycle {cycle}: within 20 s of the heal, the healed nodes did not settle on running"
            f" exactly what the manager assigned; copies {last[0]}, manager {last[1]}"
        ) from exc

"""Two managers on one PostgreSQL database (DESIGN §13): real manager processes, a real
PostgreSQL server, real agents given both URLs, real git repositories and project processes.

The leader is killed with SIGKILL during a stream of controller writes sent to both: every write
either was acknowledged and is there after, or was refused; the agents keep their projects (the
same processes) and report through the survivor, which leads within 10 s and fails over a node
lost afterwards. A stop sent to one manager reaches an agent polling the other at once: the
standby forwards the agent's long poll to the leader, which wakes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from syncopate.client import ManagerClient
from syncopate.errors import AGENT_HEADER, SyncopateError, Unauthorized
from syncopate.http_client import HttpClient
from syncopate.manager import secret_box
from syncopate.manager.forward import FOR_HEADER, PROOF_HEADER, forward_proof
from syncopate.manager.throttle import MAX_FAILURES
from syncopate.node.agent import Agent, AgentSettings
from syncopate.node.backoff import BackoffPolicy
from tests.gitrepos import Repo
from tests.helpers import PASSWORD, SimNode, wait_for
from tests.integration.test_agent import PY, alive, counter_repo
from tests.integration.test_partition import Sampler
from tests.pg import PgServer
from tests.procs import ManagerProcess, manager_process

pytestmark = pytest.mark.slow

NODE_TIMEOUT = 4.0


@dataclass
class Pair:
    """Two managers sharing a database; `a` started first (it leads), `b` from a copy of a's
    data dir (the same secrets.key, controller token and join password)."""

    a: ManagerProcess
    b: ManagerProcess
    tmp: Path
    agents: dict[str, tuple[Agent, asyncio.Event, asyncio.Task[None]]] = field(default_factory=dict)

    @property
    def both(self) -> str:
        return f"{self.a.url},{self.b.url}"

    def client(self, url: str | None = None) -> ManagerClient:
        return ManagerClient(url or self.both, token=self.a.token)

    async def health(self, url: str) -> dict[str, Any]:
        async with ManagerClient(url) as client:
            return await client.health()

    async def start_agent(self, name: str, manager: str, **options: Any) -> Agent:
        settings = AgentSettings(
            manager=manager,
            data_dir=self.tmp / "nodes" / name,
            password=PASSWORD,
            name=name,
            interval=options.pop("interval", 0.2),
            sync_interval=0.3,
            poll_wait=options.pop("poll_wait", 5.0),
            grace=2.0,
            backoff=BackoffPolicy(first=0.05, cap=0.5),
            **options,
        )
        agent = Agent(settings)
        stop = asyncio.Event()
        self.agents[name] = (agent, stop, asyncio.create_task(agent.run(stop)))

        async def joined() -> bool:
            with contextlib.suppress(SyncopateError):
                async with self.client() as ctl:
                    node = (await ctl.nodes()).get(name)
                    return node is not None and node["status"] == "alive"
            return False

        await wait_for(joined, timeout=20, what=f"{name} to join")
        return agent

    async def stop_agents(self) -> None:
        for _, stop, _task in self.agents.values():
            stop.set()
        for _, _, task in self.agents.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, timeout=15)

    async def project(self, name: str) -> dict[str, Any]:
        async with self.client() as ctl:
            return (await ctl.status([name]))[name]


@pytest.fixture
def database(pg_server: PgServer) -> str:
    return pg_server.database()


@contextlib.contextmanager
def two_processes(
    tmp: Path, database: str, node_timeout: float, tls: bool = False
) -> Iterator[tuple[ManagerProcess, ManagerProcess]]:
    options: dict[str, Any] = {
        "password": PASSWORD,
        "node_timeout": node_timeout,
        "extra_args": ["--store", database, *(["--tls"] if tls else [])],
    }
    with (
        manager_process(tmp / "a", **options) as a,
        manager_process(tmp / "b", **options) as b,
    ):
        yield a, b


@pytest.fixture
async def pair(
    tmp_path: Path, database: str, request: pytest.FixtureRequest
) -> AsyncIterator[Pair]:
    """Two managers; node-timeout NODE_TIMEOUT, or the test's `node_timeout` marker's; over
    HTTPS with their own certificate (one key: a copied data dir) with a `tls` marker."""
    marker = request.node.get_closest_marker("node_timeout")
    node_timeout = float(marker.args[0]) if marker else NODE_TIMEOUT
    tls = request.node.get_closest_marker("tls") is not None
    with two_processes(tmp_path, database, node_timeout, tls) as (a, b):
        await asyncio.to_thread(a.start)
        shutil.copytree(a.data_dir, b.data_dir, dirs_exist_ok=True)
        await asyncio.to_thread(b.start)
        running = Pair(a, b, tmp_path)
        try:
            yield running
        finally:
            await running.stop_agents()


async def test_the_first_leads_the_second_stands_by_and_both_serve(pair: Pair) -> None:
    a, b = await pair.health(pair.a.url), await pair.health(pair.b.url)
    assert (a["role"], b["role"]) == ("leader", "standby")
    assert a["leader"] == b["leader"] == pair.a.url
    listed = {m["url"]: m["role"] for m in b["managers"]}
    assert listed == {pair.a.url: "leader", pair.b.url: "standby"}
    # A write through the standby is the leader's: it shows through either.
    async with pair.client(pair.b.url) as ctl:
        added = await ctl.add("idle", "file:///srv/idle.git", {"n": 1}, start=False)
        assert added["request-status"] == "success"
    async with pair.client(pair.a.url) as ctl:
        assert (await ctl.status(["idle"]))["idle"]["persistent-variables"] == {"n": 1}
    # A client given both, the standby first, goes to the leader its answer names; one given
    # the standby alone stays (the answer names a URL it was not given).
    async with pair.client(f"{pair.b.url},{pair.a.url}") as ctl:
        assert ctl.url == pair.b.url
        await ctl.status(["idle"])
        assert ctl.url == pair.a.url
    async with pair.client(pair.b.url) as ctl:
        assert (await ctl.status(["idle"]))["idle"]["persistent-variables"] == {"n": 1}
        assert ctl.url == pair.b.url
    # `manager status` through either lists both, the leader first.
    for url in (pair.a.url, pair.b.url):
        said = await asyncio.to_thread(
            _cli, pair.a.token, "manager", "status", "--manager", url, "--json"
        )
        assert json.loads(said) == {
            "store": "postgresql",
            "leader": pair.a.url,
            "managers": [
                {"url": pair.a.url, "role": "leader", "seen-ago": ANY_AGE},
                {"url": pair.b.url, "role": "standby", "seen-ago": ANY_AGE},
            ],
        }
    table = await asyncio.to_thread(
        _cli, pair.a.token, "manager", "status", "--manager", pair.b.url
    )
    assert table.splitlines()[1].split()[:2] == [pair.a.url, "leader"], table


async def test_events_through_the_standby_show_changes_made_through_the_leader(
    pair: Pair,
) -> None:
    async with pair.client(pair.b.url) as watcher:
        feed = watcher.events()
        snapshot = await asyncio.wait_for(anext(feed), timeout=10)
        assert snapshot["type"] == "snapshot"
        async with pair.client(pair.a.url) as ctl:
            await ctl.add("seen", "file:///srv/seen.git", {}, start=False)
        change = await asyncio.wait_for(anext(feed), timeout=10)
        assert change["type"] == "changes"
        assert "seen" in change["projects"]
        await feed.aclose()
    # A wrong token is refused through the standby as by the leader.
    async with ManagerClient(pair.b.url, token="wrong") as stranger:
        with pytest.raises(Unauthorized):
            await anext(stranger.events())


async def test_only_a_fellow_manager_may_say_whom_it_forwards_for(pair: Pair) -> None:
    """X-Forwarded-For from anyone but a manager holding the key is ignored: a client cannot
    pass for another address (and out of its own lockout) by naming one."""
    forged = {FOR_HEADER: "203.0.113.9", PROOF_HEADER: "forged", AGENT_HEADER: "test"}
    body = {"name": "nobody", "access-token": "wrong"}
    async with aiohttp.ClientSession() as http:
        for _ in range(MAX_FAILURES):
            async with http.post(pair.a.url + "/node-status", json=body, headers=forged) as answer:
                assert answer.status == 401
        # The refusals counted against the sender's own address, not the one it named: that
        # address is locked out of this node's scope now.
        async with http.post(
            pair.a.url + "/node-status", json=body, headers={AGENT_HEADER: "test"}
        ) as answer:
            assert answer.status == 429, await answer.text()
    # From a fellow manager (one holding the key), the address it names is believed.
    proof = forward_proof(secret_box.load_or_create(pair.a.data_dir, None))
    node = await SimNode.join(pair.b.url, "pi-addr")
    body = {"name": node.name, "access-token": node.token}
    fellow = {FOR_HEADER: "198.51.100.7", PROOF_HEADER: proof, AGENT_HEADER: "test"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(pair.a.url + "/node-status", json=body, headers=fellow) as answer,
    ):
        assert answer.status == 200
    async with pair.client(pair.a.url) as ctl:
        assert (await ctl.nodes())["pi-addr"]["address"] == "198.51.100.7"
    await node.client.close()


@pytest.mark.tls
async def test_over_https_the_standby_forwards_to_the_leader_it_pins(pair: Pair) -> None:
    assert pair.a.url.startswith("https://") and pair.b.url.startswith("https://")
    pin = pair.a.controller_json()["fingerprint"]
    assert pair.b.controller_json()["fingerprint"] == pin  # one key: a copied data dir
    async with ManagerClient(pair.b.url, token=pair.a.token, fingerprint=pin) as ctl:
        added = await ctl.add("secure", "file:///srv/secure.git", {"n": 2}, start=False)
        assert added["request-status"] == "success"
    async with ManagerClient(pair.a.url, token=pair.a.token, fingerprint=pin) as ctl:
        assert (await ctl.status(["secure"]))["secure"]["persistent-variables"] == {"n": 2}


# Long polls held 18 s (node-timeout 60: a lease of 36 s, half of it), so a change that did not
# wake a poll forwarded by the standby would wait up to 18 s.
@pytest.mark.node_timeout(60)
async def test_a_held_poll_forwarded_by_the_standby_wakes_on_a_change(pair: Pair) -> None:
    node = await SimNode.join(pair.b.url, "pi-sim")
    await node.poll()
    poll = asyncio.create_task(node.client.node_status(node.name, node.token, wait=30))

    async def held() -> bool:
        async with pair.client(pair.a.url) as ctl:
            return "syncopate_held_polls 1" in await ctl.metrics()

    await wait_for(held, timeout=10, what="the leader to hold the forwarded poll")
    async with pair.client(pair.a.url) as ctl:
        await ctl.add("woken", "file:///srv/woken.git", {})
    answer = await asyncio.wait_for(poll, timeout=30)
    assert "woken" in answer["projects"]
    assert answer["held"] < 10, answer["held"]  # woken, not ended by its 18 s hold
    await node.client.close()


@pytest.mark.node_timeout(60)
async def test_the_standby_forwards_more_held_polls_than_a_connection_pool_holds(
    pair: Pair,
) -> None:
    # aiohttp's client holds 100 connections by default: the 101st poll would wait for one.
    count = 120
    nodes = await asyncio.gather(*(SimNode.join(pair.b.url, f"pi-{i:03d}") for i in range(count)))
    polls = [
        asyncio.create_task(node.client.node_status(node.name, node.token, wait=30))
        for node in nodes
    ]

    async def all_held() -> bool:
        async with pair.client(pair.a.url) as ctl:
            return f"syncopate_held_polls {count}" in await ctl.metrics()

    await wait_for(all_held, timeout=20, what=f"the leader to hold all {count} forwarded polls")
    for poll in polls:
        poll.cancel()
    await asyncio.gather(*polls, return_exceptions=True)
    await asyncio.gather(*(node.client.close() for node in nodes))


@pytest.mark.node_timeout(60)
async def test_a_stop_sent_to_the_leader_reaches_an_agent_polling_the_standby(
    pair: Pair,
) -> None:
    repo = counter_repo(pair.tmp)
    # The standby alone: given the leader too, the agent would go there after one answer.
    await pair.start_agent("pi-1", pair.b.url, poll_wait=30.0)
    async with pair.client(pair.a.url) as ctl:
        await ctl.add("counter", repo.url, {"count": 0}, command=f"{PY} counter.py")
    info = await wait_for(
        _running(pair, "counter"), timeout=30, what="counter to run through the standby"
    )
    pid = info["pid"]
    async with pair.client(pair.a.url) as ctl:
        sent = time.monotonic()
        await ctl.stop(["counter"])

    async def ended() -> bool:
        return not alive(pid)

    await wait_for(ended, timeout=10, interval=0.01, what="the project to stop")
    took = time.monotonic() - sent
    print(
        f"stop sent to the leader, the process gone on an agent polling the standby: {took:.3f} s"
    )
    assert took < 10  # below the 18 s hold: the leader woke the poll the standby forwarded


async def test_the_leader_killed_mid_stream_loses_nothing_and_the_fleet_carries_on(
    pair: Pair,
) -> None:
    repo = counter_repo(pair.tmp)
    await pair.start_agent("pi-1", pair.both)
    # The standby first: this agent goes to the leader its first answer names, and must come
    # back when the leader dies.
    pi2 = await pair.start_agent("pi-2", f"{pair.b.url},{pair.a.url}")
    assert pi2.client.url == pair.a.url
    async with pair.client() as ctl:
        for name in ("c1", "c2"):
            await ctl.add(name, repo.url, {"count": 0}, command=f"{PY} counter.py")
    pids = {}
    for name in ("c1", "c2"):
        info = await wait_for(_running(pair, name), timeout=30, what=f"{name} to run")
        pids[name] = info["pid"]
    assert {(await pair.project(n))["node"] for n in pids} == {"pi-1", "pi-2"}

    acked: list[str] = []
    refused: list[str] = []
    killed = asyncio.Event()

    async def stream(url: str, prefix: str) -> None:
        # Writes to one manager, each a new project; a refusal (the manager dead, or standing
        # by while nobody leads) is noted and the next one goes on.
        async with ManagerClient(url, token=pair.a.token, timeout=5) as ctl:
            for i in range(200):
                name = f"{prefix}-{i}"
                try:
                    answer = await ctl.add(name, "file:///srv/w.git", {"i": i}, start=False)
                except SyncopateError:
                    refused.append(name)
                    await asyncio.sleep(0.05)
                else:
                    assert answer["request-status"] == "success"
                    acked.append(name)
                if killed.is_set() and len([n for n in acked if n in after]) >= 10:
                    return

    after: set[str] = set()
    writers = [
        asyncio.create_task(stream(pair.a.url, "via-a")),
        asyncio.create_task(stream(pair.b.url, "via-b")),
    ]
    await wait_for(_count(acked, 10), timeout=20, what="10 writes acknowledged")
    pair.a.kill()
    killed_at = time.monotonic()
    killed.set()
    acked_before = set(acked)

    async def leads() -> bool:
        with contextlib.suppress(SyncopateError):
            return bool((await pair.health(pair.b.url))["role"] == "leader")
        return False

    await wait_for(leads, timeout=10, interval=0.05, what="the standby to lead")
    print(f"the standby leads {time.monotonic() - killed_at:.2f} s after the leader was killed")

    # Writes acknowledged after the kill come from the survivor; wait for ten.
    def track() -> None:
        after.update(set(acked) - acked_before)

    async def ten_after() -> bool:
        track()
        return len(after) >= 10

    await wait_for(ten_after, timeout=30, what="10 writes acknowledged by the survivor")
    for writer in writers:
        writer.cancel()
    for writer in writers:
        with contextlib.suppress(asyncio.CancelledError):
            await writer
    async with pair.client(pair.b.url) as ctl:
        status = await ctl.status([])
    missing = [name for name in acked if name not in status]
    assert not missing, f"acknowledged writes lost with the leader: {missing}"
    for name in acked:
        assert status[name]["persistent-variables"] == {"i": int(name.rsplit("-", 1)[1])}

    # The agents kept their projects, the same processes, and report through the survivor.
    for name, pid in pids.items():
        assert alive(pid), f"{name}'s process was restarted or stopped"
    counts = {n: status[n]["persistent-variables"]["count"] for n in pids}

    async def reported() -> bool:
        async with pair.client(pair.b.url) as ctl:
            now = await ctl.status(list(pids))
        return all(
            now[n]["pid"] == pids[n] and now[n]["persistent-variables"]["count"] > counts[n] + 2
            for n in pids
        )

    await wait_for(reported, timeout=20, what="the projects to report through the survivor")

    # A node lost now is failed over by the new leader: a simulated node takes a project and
    # falls silent; after a full node-timeout the project runs on a real agent.
    lost = await SimNode.join(pair.b.url, "pi-lost", storage=1e9, ram=1e9)
    async with pair.client(pair.b.url) as ctl:
        await ctl.add("moved", repo.url, {"count": 0}, command=f"{PY} counter.py")
    placed = await pair.project("moved")
    assert placed["node"] == "pi-lost", placed
    info = await wait_for(
        _running(pair, "moved", on=("pi-1", "pi-2")),
        timeout=NODE_TIMEOUT * 4 + 20,
        what="the lost node's project to run on an agent",
    )
    assert info["node"] in ("pi-1", "pi-2")
    await lost.client.close()


class _AnyAge(float):
    """Equal to any age a manager list may show (how long since a heartbeat)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, int | float) and 0 <= other < 10

    __hash__ = float.__hash__


ANY_AGE = _AnyAge()


def _cli(token: str, *args: str) -> str:
    """The CLI's output, run as a person would with a controller token."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCOPATE_")}
    env["SYNCOPATE_INSECURE"] = "1"
    done = subprocess.run(
        [sys.executable, "-m", "syncopate", *args],
        capture_output=True,
        text=True,
        env=env | {"SYNCOPATE_TOKEN": token},
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.node_timeout(6)
async def test_an_exclusive_project_never_runs_twice_across_a_leader_change(pair: Pair) -> None:
    """The leader dies while the node running an exclusive project is cut off from both
    managers. That node stops the project when its lease (0.6 x node-timeout since its last
    contact) runs out; the new leader gives every node a full node-timeout before it declares
    one dead, so the project starts on the other node only after it stopped on the first. A
    sampler counts the copies from /proc all along (test_partition.py's)."""
    device = Repo.create(pair.tmp / "repos" / "device", {"README": "a device"})
    first = await pair.start_agent("pi-1", pair.both)
    async with pair.client() as ctl:
        await ctl.add("device", device.url, command="exec sleep 1000", exclusive=True)
    info = await wait_for(_running(pair, "device"), timeout=30, what="the device project")
    assert info["node"] == "pi-1"
    await pair.start_agent("pi-2", pair.both)
    sampler = Sampler(str(pair.tmp / "nodes"), "device")
    with sampler.running():
        # pi-1 loses both managers (its requests go to a port nobody listens on), and the
        # leader is killed.
        dead = f"http://127.0.0.1:{_closed_port()}"
        transport = first.client
        cut_off = transport._https
        transport.urls = [dead] * len(transport.urls)
        transport._https = [HttpClient(dead) for _ in transport.urls]
        for http in cut_off:
            await http.close()  # its poll under way ends; the next ones go nowhere
        sampler.phase = "cut"
        pair.a.kill()
        moved = await wait_for(
            _running(pair, "device", on=("pi-2",)),
            timeout=60,
            what="the device project to run on pi-2",
        )

        async def sampled_on_pi_2() -> bool:
            return any(node == "pi-2" for node, _ in sampler.samples[-1].copies)

        await wait_for(sampled_on_pi_2, timeout=10, what="the sampler to see it on pi-2")
    assert moved["node"] == "pi-2"
    assert not sampler.violations, "\n".join(sampler.violations[:5]) + "\n" + sampler.report()
    # The sampler saw it run on pi-1, then on pi-2: it watched the move, not an empty fleet.
    seen = [node for sample in sampler.samples for (node, _) in sample.copies]
    assert "pi-1" in seen and "pi-2" in seen


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _count(items: list[str], n: int) -> Any:
    async def check() -> bool:
        return len(items) >= n

    return check


def _running(pair: Pair, name: str, on: tuple[str, ...] = ()) -> Any:
    async def check() -> dict[str, Any] | None:
        with contextlib.suppress(SyncopateError, KeyError):
            info = await pair.project(name)
            running = info["status"] == "running" and alive(info["pid"])
            if running and (not on or info["node"] in on):
                return info
        return None

    return check

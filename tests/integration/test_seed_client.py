"""The seed's own node client, unchanged, against our manager (DESIGN §10).

A real manager, real `tests.seedclient` processes (urllib, forms, no Syncopate-Agent header),
a real git repository through file:// whose run.sh counts in project.variables.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
from aiohttp import web

from syncopate import __version__
from syncopate.client import ManagerClient
from syncopate.errors import AGENT_HEADER, Unauthorized
from tests.gitrepos import Repo
from tests.helpers import PASSWORD, RunningManager, running_manager, wait_for

# Plain sh (the seed client runs `sh run.sh` with only the project's environment-variables,
# none yet: sh's default PATH finds sed, mv and sleep).
RUN_SH = """\
n=$(sed -n "s/.*'count': *\\([0-9][0-9]*\\).*/\\1/p" project.variables 2>/dev/null)
n=${n:-0}
while true; do
  n=$((n + 1))
  echo "{'count': $n}" > project.variables.tmp
  mv project.variables.tmp project.variables
  sleep 0.2
done
"""
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Seeds:
    """Seed clients as processes, each in its own session (so a kill takes its projects too)."""

    manager: RunningManager
    tmp: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, password: str = PASSWORD) -> subprocess.Popen[bytes]:
        folder = self.tmp / "seeds" / name
        folder.mkdir(parents=True)
        out = (folder / "out.log").open("wb")
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "tests.seedclient", self.manager.url),
                *("--password", password, "--dir", str(folder)),
                *("--name", name, "--interval", "0.1"),
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        self.procs[name] = proc
        return proc

    def output(self, name: str) -> str:
        return (self.tmp / "seeds" / name / "out.log").read_text(errors="replace")

    def kill(self, name: str) -> None:
        """The machine dies: the client and the projects it runs, at once."""
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def projects(self, name: str) -> list[psutil.Process]:
        """The `sh run.sh` processes the client runs."""
        try:
            children = psutil.Process(self.procs[name].pid).children()
        except psutil.NoSuchProcess:
            return []
        return [p for p in children if p.cmdline() == ["sh", "run.sh"]]

    def close(self) -> None:
        for name in list(self.procs):
            self.kill(name)


@pytest.fixture
async def manager(tmp_path: Path) -> AsyncIterator[RunningManager]:
    async with running_manager(tmp_path / "manager", node_timeout=1.0) as running:
        yield running


@pytest.fixture
def seeds(manager: RunningManager, tmp_path: Path) -> Iterator[Seeds]:
    fleet = Seeds(manager, tmp_path)
    try:
        yield fleet
    finally:
        fleet.close()


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo.create(tmp_path / "repos" / "counter", {"run.sh": RUN_SH})


async def status(manager: RunningManager) -> dict[str, Any]:
    async with manager.client() as ctl:
        return (await ctl.status(["counter"]))["counter"]


async def until(manager: RunningManager, check: Any, what: str, timeout: float = 20) -> Any:
    async def probe() -> dict[str, Any] | None:
        info = await status(manager)
        return info if check(info) else None

    return await wait_for(probe, timeout=timeout, what=what)


def count(info: dict[str, Any]) -> int:
    value: int = info["persistent-variables"].get("count", 0)
    return value


async def joined(manager: RunningManager, name: str) -> None:
    async def alive() -> bool:
        async with manager.client() as ctl:
            node = (await ctl.nodes()).get(name)
        return node is not None and node["status"] == "alive"

    await wait_for(alive, timeout=20, what=f"{name} to join")


async def test_seed_client_runs_reports_stops_and_starts(
    manager: RunningManager, seeds: Seeds, repo: Repo
) -> None:
    seeds.start("seed-1")
    await joined(manager, "seed-1")
    async with manager.client() as ctl:
        await ctl.add("counter", repo.url, {"count": 100})
        assert (await ctl.nodes())["seed-1"]["agent-version"] is None

    info = await until(
        manager,
        lambda i: i["status"] == "running" and count(i) > 102 and i["ram-usage"] > 0,
        "counter running on seed-1, counting on from its initial variables",
    )
    assert info["node"] == "seed-1"
    assert 0 < info["disk-usage"] < 100  # project-storage KB, stored as MB
    [process] = seeds.projects("seed-1")
    assert process.environ() == {}  # environment-variables is its whole environment

    async with manager.client() as ctl:
        await ctl.stop(["counter"])
    stopped = await until(manager, lambda i: i["status"] == "stopped", "counter stopped")
    await wait_for(lambda: _none(seeds.projects("seed-1")), what="run.sh to end")
    assert not process.is_running()
    assert count(stopped) >= count(info)

    async with manager.client() as ctl:
        await ctl.start(["counter"])
    again = await until(
        manager,
        lambda i: i["status"] == "running" and count(i) > count(stopped),
        "counter running again, from its variables",
    )
    assert again["node"] == "seed-1"
    assert "Traceback" not in seeds.output("seed-1")


async def _none(items: list[Any]) -> bool:
    return not items


async def test_failover_to_a_second_seed_client_with_the_last_variables(
    manager: RunningManager, seeds: Seeds, repo: Repo
) -> None:
    seeds.start("seed-1")
    await joined(manager, "seed-1")
    async with manager.client() as ctl:
        await ctl.add("counter", repo.url)
    await until(manager, lambda i: i["status"] == "running" and count(i) >= 10, "counting")
    seeds.start("seed-2")
    await joined(manager, "seed-2")
    first = (await status(manager))["node"]
    other = "seed-2" if first == "seed-1" else "seed-1"

    seeds.kill(first)
    last = count(await status(manager))  # nobody reports on it any more
    # From scratch it would count from 1, 0.2 s a step: the first count seen on the other node
    # is at least `last`, so it started from the last variables, and it counts on from there.
    moved = await until(
        manager,
        lambda i: i["node"] == other and i["status"] == "running",
        "counter running on the other seed client",
    )
    assert count(moved) >= last >= 10
    await until(manager, lambda i: i["node"] == other and count(i) > last, "counting on")
    assert "Traceback" not in seeds.output(other)


async def test_seed_client_joins_again_after_the_manager_forgot_it(
    manager: RunningManager, seeds: Seeds, repo: Repo
) -> None:
    client = seeds.start("seed-1")
    await joined(manager, "seed-1")
    async with manager.client() as ctl:
        await ctl.add("counter", repo.url)
    await until(manager, lambda i: i["status"] == "running" and count(i) >= 3, "counting")

    client.send_signal(signal.SIGSTOP)  # silent: the manager declares it dead
    try:

        async def dead() -> bool:
            async with manager.client() as ctl:
                return bool((await ctl.nodes())["seed-1"]["status"] == "dead")

        await wait_for(dead, timeout=20, what="seed-1 dead")
        async with manager.client() as ctl:
            await ctl.forget("seed-1")
            assert "seed-1" not in await ctl.nodes()
    finally:
        client.send_signal(signal.SIGCONT)

    kept = count(await status(manager))
    await until(
        manager,
        lambda i: i["node"] == "seed-1" and i["status"] == "running" and count(i) > kept,
        "counter running on seed-1 after it joined again, counting on",
    )
    output = seeds.output("seed-1")
    assert "status refused 100" in output and output.count("joined as seed-1") == 2, output
    assert "server down" not in output


async def test_wrong_password_is_code_1_with_a_reason_not_server_down(
    manager: RunningManager, seeds: Seeds
) -> None:
    client = seeds.start("seed-1", password="guess")

    async def exited() -> bool:  # the manager serves in this loop: never block it
        return client.poll() is not None

    await wait_for(exited, timeout=30, what="the seed client to give up")
    assert client.returncode == 1
    output = seeds.output("seed-1")
    assert "join refused 1 wrong join password" in output, output
    assert "server down" not in output
    seeds.procs.pop("seed-1")


async def test_our_client_announces_itself_on_every_request() -> None:
    """The agent's client sends Syncopate-Agent on every request, and agent-version at join."""
    seen: list[tuple[str, str | None, dict[str, Any]]] = []

    async def record(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append((request.path, request.headers.get(AGENT_HEADER), body))
        return web.json_response({"code": 101, "failure-reasoning": "no"}, status=401)

    app = web.Application()
    app.router.add_post("/{route}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with ManagerClient(f"http://127.0.0.1:{port}", token="t") as client:
            with pytest.raises(Unauthorized) as refused:
                await client.initialize(PASSWORD, "pi", agent_version=__version__)
            assert refused.value.code == 101
            for call in (
                client.node_status("pi", "x"),
                client.node_update("pi", "x", {"project-name": "p"}),
                client.status(),
            ):
                with pytest.raises(Unauthorized):
                    await call
    finally:
        await runner.cleanup()
    assert [path for path, _, _ in seen] == [
        "/node-initialize",
        "/node-status",
        "/node-update",
        "/controller",
    ]
    assert all(header == __version__ for _, header, _ in seen), seen
    assert seen[0][2]["agent-version"] == __version__

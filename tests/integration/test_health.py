"""Health checks and the memory limit for real (DESIGN section 12): a manager, an agent, git
repositories and project processes whose checks pass and then fail."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from syncopate.node import memory_limit
from syncopate.node.backoff import BackoffPolicy
from syncopate.node.logs import LogSink
from syncopate.node.memory_limit import Cgroups
from syncopate.node.project import Local
from syncopate.node.settings import AgentSettings
from syncopate.node.supervisor import ProjectProcess
from syncopate.node.watch import ProjectWatch
from tests.gitrepos import Repo
from tests.helpers import wait_for
from tests.integration.test_agent import Fleet, alive
from tests.stores import sqlite_store as sqlite_store

PY = sys.executable
# Ignores SIGTERM, so a restart takes the agent's whole stop grace (2 s in the fleet): the
# `unhealthy` status that comes before the restart is there long enough to be reported.
STUBBORN = "trap '' TERM; echo started; while :; do sleep 0.1; done"
CHECK_OK = 'test -f ok || { echo "the ok file is missing"; exit 1; }'
# Answers GET /health with 200 while the file `healthy` exists, else 503.
SERVER = """\
import os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        well = os.path.exists("healthy")
        self.send_response(200 if well else 503)
        self.end_headers()
        self.wfile.write(b"fine" if well else b"not ready: no healthy file")

    def log_message(self, format, *args):
        print("served", self.path, args[1], flush=True)

HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""
# Grows by 4 MB every 20 ms, up to 400 MB (a bound, should no limit stop it).
GROWER = """\
import time
chunks = []
print("growing", flush=True)
while True:
    if len(chunks) < 100:
        chunks.append(bytearray(b"x" * (4 * 1024 * 1024)))
    time.sleep(0.02)
"""
HOG = """\
import time
hog = bytearray(b"x" * (300 * 1024 * 1024))
print("survived", flush=True)
time.sleep(1000)
"""
FAST: dict[str, Any] = {"health_interval": 0.2, "health_timeout": 2.0, "health_retries": 2}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def checkout(fleet: Fleet, project: str, node: str = "pi-1") -> Path:
    return fleet.tmp / "nodes" / node / "projects" / project


async def log_lines(fleet: Fleet, project: str) -> list[str]:
    async with fleet.manager.client() as ctl:
        return list((await ctl.logs(project, 1000))["lines"])


def restarted(info: dict[str, Any]) -> bool:
    return bool(info["status"] == "running" and (info["restarts"] or 0) >= 1)


async def test_failing_health_command_makes_it_unhealthy_then_restarts_it(fleet: Fleet) -> None:
    repo = Repo.create(fleet.tmp / "repos" / "sick", {"ok": "yes\n"})
    await fleet.start_agent("pi-1")
    async with fleet.manager.client() as ctl:
        await ctl.add("sick", repo.url, command=STUBBORN, health_cmd=CHECK_OK, **FAST)
    first = await fleet.until("sick", lambda p: p["status"] == "running", "sick to run")
    (checkout(fleet, "sick") / "ok").unlink()

    def unhealthy(info: dict[str, Any]) -> bool:
        return bool(info["status"] == "unhealthy")

    info = await fleet.until("sick", unhealthy, "sick to be unhealthy")
    assert "health check failed 2 times in a row" in info["reason"]
    assert "the ok file is missing" in info["reason"]
    (checkout(fleet, "sick") / "ok").write_text("again\n")
    info = await fleet.until("sick", restarted, "sick to be restarted", timeout=30)
    assert info["pid"] != first["pid"] and not alive(first["pid"])
    lines = await log_lines(fleet, "sick")
    assert any("unhealthy: health check failed" in line for line in lines)
    assert any("health check failed (1 of 2)" in line for line in lines)
    # Healthy again: the restart's reason ("restarted: health check failed ...") goes once a
    # check passes; the log keeps the story.
    await fleet.until("sick", lambda p: not p["reason"], "the reason to clear", timeout=30)


async def test_health_http_passes_then_fails(fleet: Fleet) -> None:
    port = free_port()
    repo = Repo.create(fleet.tmp / "repos" / "web", {"server.py": SERVER, "healthy": "1\n"})
    await fleet.start_agent("pi-1")
    url = f"http://127.0.0.1:{port}/health?from=syncopate"
    async with fleet.manager.client() as ctl:
        await ctl.add("web", repo.url, command=f"{PY} server.py {port}", health_http=url, **FAST)

    async def served_well(times: int) -> bool:
        lines = await log_lines(fleet, "web")
        return sum("served /health?from=syncopate 200" in line for line in lines) >= times

    def passing(info: dict[str, Any]) -> bool:
        return bool(info["status"] == "running")

    await fleet.until("web", passing, "web to run")
    await wait_for(lambda: served_well(4), timeout=20, what="four passing checks")
    info = await fleet.project("web")
    assert info["status"] == "running" and info["restarts"] == 0 and not info["reason"]
    (checkout(fleet, "web") / "healthy").unlink()
    info = await fleet.until("web", restarted, "web to be restarted", timeout=30)
    assert "HTTP 503" in info["reason"] and "no healthy file" in info["reason"]
    assert any("unhealthy:" in line for line in await log_lines(fleet, "web"))


async def test_health_section_of_syncopate_toml_is_used_without_flags(fleet: Fleet) -> None:
    toml = (
        '[run]\ncommand = "echo started; exec sleep 1000"\n'
        f"[health]\ncmd = '{CHECK_OK}'\ninterval = 0.2\nretries = 2\n"
    )
    repo = Repo.create(fleet.tmp / "repos" / "tomly", {"syncopate.toml": toml, "ok": "1\n"})
    await fleet.start_agent("pi-1")
    async with fleet.manager.client() as ctl:
        await ctl.add("tomly", repo.url)
    await fleet.until("tomly", lambda p: p["status"] == "running", "tomly to run")
    (checkout(fleet, "tomly") / "ok").unlink()
    info = await fleet.until("tomly", restarted, "tomly to be restarted", timeout=30)
    assert "the ok file is missing" in info["reason"]


async def test_project_over_max_ram_is_restarted_with_the_reason(fleet: Fleet) -> None:
    repo = Repo.create(fleet.tmp / "repos" / "grower", {"grow.py": GROWER})
    await fleet.start_agent("pi-1")
    async with fleet.manager.client() as ctl:
        await ctl.add("grower", repo.url, command=f"{PY} grow.py", max_ram=80)
    info = await fleet.until("grower", restarted, "grower to be restarted", timeout=30)
    cgroups, why_not = memory_limit.find_cgroups(fleet.tmp / "nodes" / "pi-1")
    lines = await log_lines(fleet, "grower")
    if cgroups is None:
        # Polling alone: it measured the tree over the limit and restarted it.
        assert "over its limit of 80 MB" in info["reason"], info["reason"]
        assert any("over its limit of 80 MB: restarting" in line for line in lines)
        assert any(f"no cgroup: {why_not}" in line for line in lines)
    else:
        # The kernel may be first (memory.max is the limit); either way the reason says why.
        assert (
            "over its limit of 80 MB" in info["reason"]
            or "killed by the kernel" in (info["reason"])
        )


async def test_cgroup_memory_max_holds_the_project_and_goes_with_it(fleet: Fleet) -> None:
    data_dir = fleet.tmp / "nodes" / "pi-1"
    cgroups, why_not = memory_limit.find_cgroups(data_dir)
    if cgroups is None:
        print(f"cgroup v2 is not writable here: {why_not}")
        pytest.skip(f"cgroup v2 is not writable here: {why_not}")
    quiet = Repo.create(fleet.tmp / "repos" / "quiet", {"README": "x"})
    # Asks for 300 MB at once: the kernel stops it at 64 MB, before any poll could.
    hog = Repo.create(fleet.tmp / "repos" / "hog", {"hog.py": HOG})
    await fleet.start_agent("pi-1")
    async with fleet.manager.client() as ctl:
        await ctl.add("quiet", quiet.url, command="echo started; exec sleep 1000", max_ram=64)
        await ctl.add("hog", hog.url, command=f"{PY} hog.py", max_ram=64)
        info = await fleet.until("quiet", lambda p: p["status"] == "running", "quiet to run")
        group = cgroups.project("quiet").path
        assert str(info["pid"]) in (group / "cgroup.procs").read_text().split()
        assert (group / "memory.max").read_text().strip() == str(64 * memory_limit.MB)

        async def said_so() -> bool:
            return any("cgroup v2 memory.max" in x for x in await log_lines(fleet, "quiet"))

        await wait_for(said_so, what="quiet's log to say the cgroup holds it")

        async def killed_by_the_kernel() -> bool:
            lines = await log_lines(fleet, "hog")
            return any("killed by the kernel: over its memory limit of 64 MB" in x for x in lines)

        await wait_for(killed_by_the_kernel, timeout=30, what="the kernel to kill hog")
        await ctl.remove("quiet", quiet.url)
        await ctl.remove("hog", hog.url)

        async def cgroups_gone() -> bool:
            return not group.exists() and not cgroups.project("hog").path.exists()

        await wait_for(cgroups_gone, timeout=20, what="the projects' cgroups to be removed")


async def test_checks_begin_an_interval_after_each_start_and_pause_while_it_restarts(
    tmp_path: Path,
) -> None:
    """The watch on a real process, without a manager: every check falls inside a run, at
    least `interval` after that run started, and none while the process is being restarted
    (its stop takes the 0.6 s grace: it ignores SIGTERM)."""
    interval = 0.2
    command = "date +%s.%N >> starts.log; trap '' TERM; while :; do sleep 0.05; done"
    env = dict(os.environ)
    asked: list[tuple[str, str | None]] = []
    watches: list[ProjectWatch] = []
    sink = LogSink(tmp_path / "w.log")
    process = ProjectProcess(
        "w", command, tmp_path, env, sink, tmp_path / "records",
        on_change=lambda: watches[0].changed() if watches else None, grace=0.6,
    )  # fmt: skip
    local = Local(name="w", url="file:///x", epoch=1)
    local.health = {"cmd": "date +%s.%N >> checks.log", "interval": interval, "retries": 1}
    settings = AgentSettings(manager="http://127.0.0.1:1", data_dir=tmp_path)
    watches.append(ProjectWatch(local, process, settings, lambda r, u: asked.append((r, u))))
    (tmp_path / "records").mkdir()

    def times(name: str) -> list[float]:
        path = tmp_path / name
        return [float(x) for x in path.read_text().split()] if path.exists() else []

    async def checks_after(count: int) -> bool:
        return len(times("checks.log")) >= count

    try:
        await process.start()
        await wait_for(lambda: checks_after(2), what="two checks of the first run")
        restart_asked = time.time()
        await process.restart()
        more = len(times("checks.log")) + 2
        await wait_for(lambda: checks_after(more), what="two checks of the second run")
    finally:
        watches[0].close()
        await process.stop()
        sink.close()
    first, second = times("starts.log")
    checks = times("checks.log")
    assert second - restart_asked >= 0.5  # the restart took the grace
    for at in checks:
        # (one check may have begun just before the restart was asked)
        assert not restart_asked + 0.1 < at < second, "a check ran while it restarted"
        began = second if at > second else first
        assert at - began >= interval * 0.9, f"a check {at - began:.3f}s after its start"
    assert any(at > second for at in checks) and asked == []


async def test_the_watch_puts_each_run_in_its_cgroup_and_names_the_kernels_kill(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watch's side of cgroup v2, everywhere: a directory stands in for cgroupfs (the
    kernel's side is the test above, where cgroup v2 is writable)."""
    base = tmp_path / "cgroupfs" / "syncopate-test"
    base.mkdir(parents=True)
    data_dir = tmp_path / "node"
    monkeypatch.setitem(memory_limit._found, data_dir.resolve(), (Cgroups(base), ""))
    (tmp_path / "records").mkdir()
    sink = LogSink(tmp_path / "m.log")
    watches: list[ProjectWatch] = []
    process = ProjectProcess(
        "m", "exec sleep 1000", tmp_path, dict(os.environ), sink, tmp_path / "records",
        policy=BackoffPolicy(first=0.05, cap=0.5),
        on_change=lambda: watches[0].changed() if watches else None, grace=1.0,
    )  # fmt: skip
    local = Local(name="m", url="file:///x", epoch=1, max_ram=64)
    settings = AgentSettings(manager="http://127.0.0.1:1", data_dir=data_dir, interval=0.2)
    watches.append(ProjectWatch(local, process, settings, lambda r, u: None))
    group = base / "m"
    try:
        await process.start()
        first = process.pid
        # Moved in as it started (on_change runs in the spawn, before it can fork).
        assert (group / "cgroup.procs").read_text() == f"{first}\n"
        assert (group / "memory.max").read_text() == f"{64 * memory_limit.MB}\n"

        async def said(text: str) -> bool:
            return any(text in line for line in sink.tail())

        await wait_for(lambda: said("cgroup v2 memory.max"), what="the log to say how")
        # The kernel's OOM killer, as the cgroup shows it.
        (group / "memory.events").write_text("oom 1\noom_kill 1\n")
        os.killpg(first or 0, signal.SIGKILL)

        async def running_again() -> bool:
            return process.status == "running" and process.pid != first

        await wait_for(running_again, what="the supervisor to start it again")
        assert local.reason == (
            "killed by the kernel: over its memory limit of 64 MB (cgroup v2 memory.max)"
        )
        assert await said("killed by the kernel")
        assert (group / "cgroup.procs").read_text() == f"{process.pid}\n"
    finally:
        await process.stop()
        for name in group.iterdir():  # cgroupfs removes its files with the directory
            name.unlink()
        watches[0].close()
        sink.close()
    assert not group.exists()

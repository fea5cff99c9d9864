"""The demo's processes: a manager and N node agents, each in its own session, output to a log.

Own sessions, so a Ctrl-C in the demo's terminal reaches the demo alone, and it stops the rest
in order: the agents first (each stops its projects, sends their last variables and tells the
manager), then the manager. Projects run in sessions of their own too, so an agent that has to be
killed leaves them running; `stop` then ends them from what it saw of each agent's process tree
and from the records the agents keep in `<data-dir>/running/`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psutil

from syncopate.demo import DemoError
from syncopate.node import identity
from syncopate.node.leftovers import end_all_leftovers

LISTENING = re.compile(r"Syncopate manager listening on (https?://\S+)")
# A Raspberry Pi takes seconds to import the manager; generous, as only a broken start hits it.
MANAGER_START_TIMEOUT = 60.0
# An agent's leave: each project gets 5 s after SIGTERM, then SIGKILL, then the final reports.
AGENT_STOP_TIMEOUT = 20.0
MANAGER_STOP_TIMEOUT = 10.0
KILL_TIMEOUT = 5.0
POLL = 0.05
# Short enough that a node that dies shows its projects moving within the demo's attention span.
NODE_TIMEOUT = 5.0
REPORT_INTERVAL = 1.0  # lively tables; three local agents reporting each second cost nothing
SYNC_INTERVAL = 5.0  # a commit in <dir>/repos/<example> reaches its node within seconds
# Settings for another manager, which the demo's processes must not pick up.
FOREIGN_ENV = (
    "SYNCOPATE_MANAGER",
    "SYNCOPATE_TOKEN",
    "SYNCOPATE_PASSWORD",
    "SYNCOPATE_CA_FILE",
    "SYNCOPATE_FINGERPRINT",
)


@dataclass
class Child:
    """One process of the demo."""

    name: str
    log: Path
    process: subprocess.Popen[bytes]
    data_dir: Path | None = None
    # What the process had started, as last seen: ended at stop if still there.
    descendants: list[psutil.Process] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def exit_code(self) -> int | None:
        return self.process.poll()

    def signal(self, sig: signal.Signals) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)

    def remember_descendants(self) -> None:
        if self.process.poll() is not None:
            return
        with contextlib.suppress(psutil.Error):
            self.descendants = psutil.Process(self.pid).children(recursive=True)


class Fleet:
    """The manager and agents of one demo, laid out under `scratch`."""

    def __init__(self, scratch: Path, nodes: int) -> None:
        self.scratch = scratch
        self.manager_dir = scratch / "manager"
        self.logs_dir = scratch / "logs"
        self.node_names = [f"demo-{i}" for i in range(1, nodes + 1)]
        self.password = secrets.token_urlsafe(16)
        self.manager: Child | None = None
        self.agents: list[Child] = []
        self.url = ""
        self.token = ""

    def node_dir(self, name: str) -> Path:
        return self.scratch / "nodes" / name

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in FOREIGN_ENV}
        env["SYNCOPATE_PASSWORD"] = self.password  # not on command lines, where ps shows it
        env["PYTHONUNBUFFERED"] = "1"  # so the logs are current
        return env

    def _spawn(self, name: str, argv: list[str], data_dir: Path | None = None) -> Child:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        log = self.logs_dir / f"{name}.log"
        with log.open("ab") as output:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=self.environment(),
                start_new_session=True,
            )
        return Child(name, log, process, data_dir)

    async def start_manager(self) -> None:
        """Start the manager; return once it listens, with its URL and controller token."""
        log = self.logs_dir / "manager.log"
        offset = log.stat().st_size if log.exists() else 0
        argv = [sys.executable, "-m", "syncopate", "manager", "serve", "--host", "127.0.0.1"]
        port = self.earlier_port()
        argv += ["--port", str(port), "--data-dir", str(self.manager_dir)]
        argv += ["--node-timeout", f"{NODE_TIMEOUT:g}"]
        self.manager = manager = self._spawn("manager", argv)
        deadline = time.monotonic() + MANAGER_START_TIMEOUT
        while not self.url:
            found = LISTENING.search(_read_from(log, offset))
            if found:
                self.url = found.group(1)
            elif manager.exit_code is not None:
                said = _last_line(log, offset)
                if port and "address already in use" in said:
                    raise DemoError(
                        f"port {port}, where the earlier demo in {self.scratch} listened, is "
                        "taken; stop what uses it, or give the demo another --dir"
                    )
                raise DemoError(
                    f"the manager exited ({manager.exit_code}) before listening; see {log}: {said}"
                )
            elif time.monotonic() > deadline:
                raise DemoError(
                    f"the manager did not start within {MANAGER_START_TIMEOUT:g}s; see {log}"
                )
            else:
                await asyncio.sleep(POLL)
        controller = self.manager_dir / "controller.json"
        try:
            self.token = str(json.loads(controller.read_text(encoding="utf-8"))["token"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DemoError(f"cannot read the controller token from {controller}: {exc}") from None

    def earlier_port(self) -> int:
        """The port of an earlier demo in this scratch dir, else 0 (any free one).

        The same URL again lets the agents keep their identities (their node.json names the
        manager's URL), so the nodes keep their names and the projects carry on.
        """
        try:
            data = json.loads((self.manager_dir / "controller.json").read_text(encoding="utf-8"))
            return int(urlsplit(str(data["url"])).port or 0)
        except (OSError, ValueError, KeyError, TypeError):
            return 0

    def start_agents(self) -> None:
        """Start one agent per node name, each with its own data dir."""
        for name in self.node_names:
            argv = [sys.executable, "-m", "syncopate.node", self.url, "--name", name]
            argv += ["--data-dir", str(self.node_dir(name))]
            argv += ["--interval", f"{REPORT_INTERVAL:g}", "--sync-interval", f"{SYNC_INTERVAL:g}"]
            self.agents.append(self._spawn(name, argv, self.node_dir(name)))

    def joined_as(self, agent: Child) -> str | None:
        """The name `agent` joined this manager under, once it has (from its node.json).

        Usually its own name; another one when an earlier demo in the same dir left the name
        taken (a node the manager still counts until its timeout).
        """
        found = identity.load(agent.data_dir) if agent.data_dir is not None else None
        return found.name if found is not None and found.manager == self.url else None

    def remember_projects(self) -> None:
        """Note each agent's process tree, so `stop` can end projects an agent left behind."""
        for agent in self.agents:
            agent.remember_descendants()

    async def stop(self, say: Callable[[str], None]) -> list[psutil.Process]:
        """Stop the agents (and so their projects), then the manager; what is left (nothing)."""
        self.remember_projects()
        for agent in self.agents:
            agent.signal(signal.SIGTERM)
        stubborn = await _wait_exit(self.agents, AGENT_STOP_TIMEOUT)
        for agent in stubborn:
            say(f"{agent.name} did not stop within {AGENT_STOP_TIMEOUT:g}s; killing it")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(agent.pid, signal.SIGKILL)
        await _wait_exit(stubborn, KILL_TIMEOUT)
        # Normally nothing to do: an agent that stopped cleanly has ended its projects.
        ended = await asyncio.to_thread(self._end_left_projects)
        for name in ended:
            say(f"ended {name}, left running by its agent")
        if self.manager is not None:
            self.manager.signal(signal.SIGTERM)
            if await _wait_exit([self.manager], MANAGER_STOP_TIMEOUT):
                say(f"the manager did not stop within {MANAGER_STOP_TIMEOUT:g}s; killing it")
                self.manager.signal(signal.SIGKILL)
                await _wait_exit([self.manager], KILL_TIMEOUT)
        return await asyncio.to_thread(self.left_over)

    def _end_left_projects(self) -> list[str]:
        ended: list[str] = []
        for name in self.node_names:
            home = self.node_dir(name)
            ended += [
                f"{project} on {name}" for project in end_all_leftovers(home / "running", home)
            ]
        strays = [p for agent in self.agents for p in agent.descendants if _alive(p)]
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for proc in strays:
                with contextlib.suppress(psutil.Error):
                    proc.send_signal(sig)
            gone, strays = psutil.wait_procs(strays, timeout=KILL_TIMEOUT)
            ended += [f"process {p.pid}" for p in gone]
            if not strays:
                break
        return ended

    def left_over(self) -> list[psutil.Process]:
        """The demo's processes still alive: the manager, agents, or what they started."""
        children = [c for c in (self.manager, *self.agents) if c is not None]
        alive = []
        for child in children:
            if child.exit_code is None:
                with contextlib.suppress(psutil.Error):
                    alive.append(psutil.Process(child.pid))
        return alive + [p for c in children for p in c.descendants if _alive(p)]


def _alive(proc: psutil.Process) -> bool:
    try:
        # is_running() also tells a reused pid from the process that was seen.
        return bool(proc.is_running()) and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


async def _wait_exit(children: list[Child], timeout: float) -> list[Child]:
    """Wait until every child has exited or `timeout` passed; those still running."""
    deadline = time.monotonic() + timeout
    running = [c for c in children if c.exit_code is None]
    while running and time.monotonic() < deadline:
        await asyncio.sleep(POLL)
        running = [c for c in running if c.exit_code is None]
    return running


def _read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _last_line(path: Path, offset: int) -> str:
    lines = [line for line in _read_from(path, offset).splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"

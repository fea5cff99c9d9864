"""The agent benchmark's subprocesses: a manager asked through its controller API (urllib),
`syncopate node join` agents, and the git repositories their projects come from."""

from __future__ import annotations

import json
import shlex
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.procs import PASSWORD, PY, Manager, Processes, start_manager

AGENT_INTERVAL = 5.0  # --interval of the agents
SYNC_INTERVAL = 60.0  # --sync-interval of the agents
SLEEPER = """\
# A project that does nothing: it sleeps until it is stopped.
import time

while True:
    time.sleep(3600)
"""
# No proxy: every request goes straight to the manager on 127.0.0.1.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def post_json(url: str, body: dict[str, Any], timeout: float = 10.0) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with OPENER.open(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            return error.code, json.loads(error.read() or b"{}")
        except ValueError:
            return error.code, {}


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=True, timeout=60)


def make_repo(path: Path) -> str:
    """A repository with sleeper.py, one commit on `main`; its file:// URL."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    (path / "sleeper.py").write_text(SLEEPER, encoding="utf-8")
    git(path, "add", "-A")
    who = ["-c", "user.email=bench@syncopate.invalid", "-c", "user.name=Syncopate bench"]
    git(path, *who, "commit", "-q", "-m", "first")
    return path.resolve().as_uri()


def project_command(marker: str) -> str:
    """The project's command: run by `/bin/sh -c` in its checkout; `marker` names it."""
    return f"exec {shlex.quote(PY)} sleeper.py {marker}"


# --- subprocesses ---
@dataclass
class Controller(Manager):
    """A manager asked through its controller API (urllib: this benchmark is synchronous)."""

    node_timeout: float = 15.0

    def ask(self, action: str, **fields: Any) -> dict[str, Any]:
        body = {"access-token": self.token, "action": action, **fields}
        status, answer = post_json(f"{self.url}/controller", body)
        if status != 200:
            raise RuntimeError(f"controller {action}: HTTP {status}: {answer}")
        return answer

    def project(self, name: str) -> dict[str, Any]:
        info: dict[str, Any] = self.ask("status", projects=[name])["projects"].get(name, {})
        return info

    def node_status(self, name: str) -> str | None:
        node = self.ask("nodes")["nodes"].get(name)
        return None if node is None else str(node["status"])


def start_controller(procs: Processes, folder: Path, node_timeout: float) -> Controller:
    manager = start_manager(procs, folder, "--node-timeout", f"{node_timeout:g}")
    return Controller(manager.proc, manager.url, manager.token, node_timeout)


@dataclass
class Agent:
    name: str
    data_dir: Path
    proc: subprocess.Popen[bytes]


def start_agent(procs: Processes, manager: Controller, folder: Path, name: str) -> Agent:
    """Start `syncopate node join` (again, when `folder` holds its identity); wait until alive."""
    data_dir = folder / name
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [
        *(PY, "-m", "syncopate", "node", "join", manager.url, "--password", PASSWORD),
        *("--name", name, "--data-dir", str(data_dir)),
        *("--interval", f"{AGENT_INTERVAL:g}", "--sync-interval", f"{SYNC_INTERVAL:g}"),
    ]
    log = folder / f"{name}.log"
    proc = procs.start(command, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        if manager.node_status(name) == "alive":
            return Agent(name, data_dir, proc)
        time.sleep(0.05)
    raise RuntimeError(f"agent {name} did not join; its output:\n{log.read_text()[-2000:]}")

"""A node client that behaves like the seed's original one, for the tests (DESIGN §10).

What the seed's README describes and its client does: urllib only, form-encoded bodies, no
`Syncopate-Agent` header (so the manager answers errors as HTTP 200 with a numeric `code`).
It joins with /node-initialize, then loops, one thing at a time:

- /node-status: `code` 100 (unknown node) or 101 (wrong token) -> join again; its `projects`
  are what it runs. A project that leaves the list is stopped (that is its only stop).
- each listed project: cloned into `<dir>/projects/<name>`, its `persistent-variables` written
  to `project.variables` (a dictionary's repr, as the seed says) when it starts, and `sh run.sh`
  started there with the project's `environment-variables` as its whole environment; restarted
  when it exited.
- /node-update per project: status `alive`/`dead`/`unborn`, `project-ram` (MB),
  `project-storage` (KB), and `persistent-variables` read from `project.variables` (`{}` when the
  file is missing). `code` 100/101 -> join again; 102/103 -> stop that project.

Any HTTP error or unreachable manager is "server down": it waits and tries again.

    python -m tests.seedclient URL --password P --dir D [--name N] [--interval S]
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

UNKNOWN_NODE, WRONG_TOKEN = 100, 101


def say(*parts: object) -> None:
    print(*parts, flush=True)


class ServerDown(Exception):
    pass


class SeedClient:
    def __init__(self, url: str, password: str, folder: Path, name: str, interval: float) -> None:
        self.url = url.rstrip("/")
        self.password = password
        self.folder = folder
        self.preferred = name
        self.interval = interval
        self.name = ""
        self.token = ""
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.urls: dict[str, str] = {}

    def post(self, route: str, fields: dict[str, Any]) -> dict[str, Any]:
        body = urllib.parse.urlencode(fields).encode()
        request = urllib.request.Request(self.url + route, data=body, method="POST")
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                data: dict[str, Any] = json.loads(answer.read())
                return data
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise ServerDown(str(exc)) from None

    def join(self) -> bool:
        answer = self.post(
            "/node-initialize",
            {
                "preferred-name": self.preferred,
                "syncopate-password": self.password,
                "storage": 10_000,
                "ram": 4_000,
            },
        )
        if answer["code"] != 0:
            say("join refused", answer["code"], answer["failure-reasoning"])
            return False
        self.name, self.token = answer["name"], answer["access-token"]
        say("joined as", self.name)
        return True

    def step(self) -> None:
        answer = self.post("/node-status", {"name": self.name, "access-token": self.token})
        if answer["code"] in (UNKNOWN_NODE, WRONG_TOKEN):
            say("status refused", answer["code"], answer["failure-reasoning"])
            self.name = ""
            return
        projects: dict[str, Any] = answer["projects"]
        for gone in [name for name in self.procs if name not in projects]:
            self.stop(gone)
        for name, project in projects.items():
            self.run(name, project)
        for name, project in projects.items():
            code = self.report(name, project)
            if code in (UNKNOWN_NODE, WRONG_TOKEN):
                self.name = ""
                return
            if code != 0:
                self.stop(name)

    def run(self, name: str, project: dict[str, Any]) -> None:
        proc = self.procs.get(name)
        if proc is not None and proc.poll() is None:
            return
        where = self.folder / "projects" / name
        if not where.exists():
            where.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                ["git", "clone", "-q", project["project-url"], str(where)], check=True, timeout=60
            )
        if proc is None:  # a start, not a restart: the manager's variables
            variables = project["persistent-variables"]
            (where / "project.variables").write_text(repr(variables), encoding="utf-8")
        self.procs[name] = subprocess.Popen(
            ["sh", "run.sh"], cwd=where, env=dict(project["environment-variables"])
        )
        self.urls[name] = project["project-url"]
        say("started", name, self.procs[name].pid)

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)
        say("stopped", name)

    def report(self, name: str, project: dict[str, Any]) -> int:
        where = self.folder / "projects" / name
        proc = self.procs.get(name)
        status = "unborn" if proc is None else "alive" if proc.poll() is None else "dead"
        try:
            variables = ast.literal_eval((where / "project.variables").read_text("utf-8"))
        except (OSError, ValueError, SyntaxError):
            variables = {}
        answer = self.post(
            "/node-update",
            {
                "name": self.name,
                "access-token": self.token,
                "project-name": name,
                "project-url": project["project-url"],
                "status": status,
                "project-ram": ram_mb(proc.pid) if proc and proc.poll() is None else 0,
                "project-storage": storage_kb(where),
                "persistent-variables": repr(variables),
            },
        )
        if answer["code"] != 0:
            say("update refused", name, answer["code"], answer["failure-reasoning"])
        code: int = answer["code"]
        return code

    def loop(self) -> None:
        while True:
            try:
                if not self.name and not self.join():
                    sys.exit(1)
                if self.name:
                    self.step()
            except ServerDown as exc:
                say("server down:", exc)
            time.sleep(self.interval)


def ram_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def storage_kb(where: Path) -> int:
    total = 0
    for root, _, files in os.walk(where):
        for file in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, file)).st_size
    return total // 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--password", required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--name", default="")
    parser.add_argument("--interval", type=float, default=0.2)
    args = parser.parse_args()
    client = SeedClient(args.url, args.password, args.dir, args.name, args.interval)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        client.loop()
    finally:
        for name in list(client.procs):
            client.stop(name)


if __name__ == "__main__":
    main()

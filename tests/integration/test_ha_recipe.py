"""The README's recipe for two managers on PostgreSQL runs as written (DESIGN §13).

The block is taken from the README and run with bash, with free ports and a scratch folder in
place of the README's (and under root, PostgreSQL's own commands run as an unprivileged user:
initdb refuses root): a scratch PostgreSQL, two managers on it, a node given both URLs, then
SIGKILL to the first manager. After it, the second leads and the node is alive through it.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_readme import README, shell_blocks
from tests.pg import pg_bin, why_not
from tests.procs import wait_until

pytestmark = pytest.mark.slow

RECIPE = next(block for block in shell_blocks(README) if "initdb" in block)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get_json(url: str, token: str | None = None, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=5) as answer:
        return json.loads(answer.read())


@pytest.fixture
def scratch() -> Iterator[tuple[Path, pwd.struct_passwd | None]]:
    reason = why_not()
    if reason is not None:
        pytest.skip(reason)
    folder = Path(tempfile.mkdtemp(prefix="syncopate-ha-"))
    user = None
    if os.geteuid() == 0:
        user = pwd.getpwnam("nobody")
        os.chown(folder, user.pw_uid, user.pw_gid)
    try:
        yield folder, user
    finally:
        subprocess.run(["pkill", "-KILL", "-f", str(folder)], check=False)
        subprocess.run(["rm", "-rf", str(folder)], check=False)


def test_the_two_manager_recipe_runs_as_written(
    scratch: tuple[Path, pwd.struct_passwd | None],
) -> None:
    folder, user = scratch
    a, b, db = free_port(), free_port(), free_port()
    script = RECIPE
    as_user = f"runuser -u {user.pw_name} -- " if user is not None else ""
    for shown, used in (
        ("pip install 'syncopate[postgresql]'", ":"),  # installed: this test runs in it
        ("$PG/initdb", f"{as_user}$PG/initdb"),
        ("$PG/pg_ctl", f"{as_user}$PG/pg_ctl"),
        ("/usr/lib/postgresql/15/bin", str(pg_bin())),
        ("/tmp/ha", str(folder)),
        ("5499", str(db)),
        ("8471", str(a)),
        ("8472", str(b)),
    ):
        assert shown in script, f"the recipe no longer says {shown!r}"
        script = script.replace(shown, used)
    env = {
        # `syncopate` is the script beside this interpreter (the test's virtualenv).
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "HOME": str(folder),
        "SYNCOPATE_HOME": str(folder / "home"),
        "LANG": "C.UTF-8",
    }
    command = ["bash", "-e", "-c", script]
    with open(folder / "recipe.log", "wb") as log:
        done = subprocess.run(
            command,
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=120,
            check=False,
            start_new_session=True,
        )
    output = (folder / "recipe.log").read_text(errors="replace")
    assert done.returncode == 0, output
    try:
        second = f"http://127.0.0.1:{b}"

        def leads() -> bool:
            try:
                return bool(get_json(second + "/health")["role"] == "leader")
            except OSError:
                return False

        wait_until(leads, "the second manager to lead", timeout=30)
        token = json.loads((folder / "b" / "controller.json").read_text())["token"]

        def node_alive() -> bool:
            try:
                nodes = get_json(second + "/controller", token, {"action": "nodes"})["nodes"]
            except OSError:
                return False
            return any(n["status"] == "alive" for n in nodes.values())

        wait_until(node_alive, "the node to be alive through the second manager", timeout=30)
        assert re.search(r"leader\s+\d+ s ago", output), output  # `manager status` printed
    finally:
        data, tools = folder / "db", pg_bin()
        assert tools is not None  # why_not() said there is one
        stop = [str(tools / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]
        if user is not None:
            stop = ["runuser", "-u", user.pw_name, "--", *stop]
        subprocess.run(stop, capture_output=True, check=False)
        for pid in _pids_under(folder):
            os.kill(pid, signal.SIGKILL)


def _pids_under(folder: Path) -> list[int]:
    """Processes whose command line names the scratch folder (the recipe's managers, node)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if str(folder) in cmdline:
            found.append(int(entry.name))
    return found

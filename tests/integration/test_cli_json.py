"""Every controller command's --json against a real manager, a real agent and real projects:
the output parses, has the one documented shape (README, "Commands"), and every key at every
depth is kebab-case but the user's own (variable, env, secret and label names)."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from syncopate.client import ManagerClient
from tests.gitrepos import Repo
from tests.integration.test_agent import COUNTER
from tests.integration.test_cli import Cli, cli_with_agent
from tests.procs import wait_until

pytestmark = pytest.mark.slow
PASSWORD = "json-password"
KEBAB = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
# The objects whose keys are the user's, named here one by one: nothing else may escape the rule.
USER_KEYED = {"persistent-variables", "initial-variables", "env", "secrets", "labels"}

# The project keys --json shows for what the wire calls `ram`, `disk` and `restart`; a project
# shows none of the ambiguous wire names (a node's `ram` is what it has, not what it needs).
NEW_PROJECT_KEYS = ("ram-needed", "disk-needed", "restart-requests", "restarts")
OLD_PROJECT_KEYS = {"ram", "disk", "restart", "project-name"}


def bad_keys(data: Any, path: str = "") -> list[str]:
    """Every key in `data` that is not kebab-case, with where it is; USER_KEYED objects aside."""
    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            where = f"{path}.{key}"
            if not KEBAB.fullmatch(key):
                found.append(where)
            if key not in USER_KEYED:
                found += bad_keys(value, where)
    elif isinstance(data, list):
        for index, item in enumerate(data):
            found += bad_keys(item, f"{path}[{index}]")
    return found


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with cli_with_agent(tmp_path_factory.mktemp("cli-json"), 3, PASSWORD) as running:
        yield running


class Checked:
    """Runs --json commands and keeps what each printed, checked for kebab-case keys."""

    def __init__(self, cli: Cli) -> None:
        self.cli = cli
        self.ran: list[str] = []

    def __call__(self, *args: str) -> Any:
        done = self.cli(*args, "--json")
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        data = json.loads(done.stdout)
        assert bad_keys(data) == [], (args, bad_keys(data))
        self.ran.append(" ".join(args[:2]))
        return data


def quiet_node(cli: Cli, name: str) -> str:
    """A node that joins and never polls: its commands wait, and it dies at the node-timeout."""

    async def join() -> str:
        async with ManagerClient(cli.env["SYNCOPATE_MANAGER"]) as node:
            joined, _ = await node.initialize(PASSWORD, name, agent_version="test")
            return joined

    return asyncio.run(join())


def test_every_json_command_prints_the_one_shape(cli: Cli) -> None:
    run = Checked(cli)
    repo = Repo.create(cli.tmp / "repos" / "counter", {"counter.py": COUNTER})
    command = f"{sys.executable} counter.py"
    added = run(
        "project", "add", "counter", repo.url, "--command", command, "--var", "a_b=1",
        "--env", "MY_ENV=x", "--secret", "API_KEY=s",
    )  # fmt: skip
    assert added["name"] == "counter" and added["result"].startswith("added counter")
    assert added["initial-variables"] == {"a_b": 1} and added["env"] == {"MY_ENV": "x"}
    mon = run("project", "add", "mon", repo.url, "--command", command, "--every-node")
    assert mon["name"] == "mon"
    wait_until(
        lambda: (
            run("project", "show", "counter")["status"] == "running"
            and run("project", "show", "mon")["copies"][0]["status"] == "running"
        ),
        "both projects to run",
    )
    shown = run("project", "show", "mon")
    assert [c["node"] for c in shown["copies"]] == ["pi-1"]  # an array of objects, node first
    listed = run("project", "list")
    assert [p["name"] for p in listed] == ["counter", "mon"]
    for project in [*listed, run("project", "show", "counter")]:
        # One name for one thing (output.RENAMES): what it needs, restarts asked for and done.
        assert set(NEW_PROJECT_KEYS) <= set(project), sorted(project)
        assert not OLD_PROJECT_KEYS & set(project), sorted(project)
    assert run("project", "set", "counter", "--env", "OTHER_ENV=y")["changed"] == ["env"]
    wrote = run("project", "vars", "counter", "c_d=2")
    assert [p["name"] for p in wrote] == ["counter"] and "result" in wrote[0]
    assert wrote[0]["persistent-variables"]["c_d"] == 2
    for verb in ("stop", "start", "restart", "reset"):
        acted = run("project", verb, "counter")
        assert [(p["name"], bool(p["result"])) for p in acted] == [("counter", True)], verb
    assert run("project", "rollout", "counter")["name"] == "counter"
    logs = wait_until(
        lambda: (kept := run("logs", "counter", "-n", "3"))["lines"] and kept, "output"
    )
    assert logs["name"] == "counter" and isinstance(logs["seq"], int) and logs["node"] == "pi-1"

    nodes = run("node", "list")
    assert [n["name"] for n in nodes] == ["pi-1"]
    assert {"ram-total", "disk-total", "ram-usage", "disk-usage"} <= set(nodes[0]), nodes
    assert not {"ram", "storage", "disk"} & set(nodes[0]), sorted(nodes[0])
    labelled = run("node", "label", "pi-1", "Zone_X=lab")
    assert labelled == {
        "name": "pi-1",
        "result": "pi-1 labels: Zone_X=lab",
        "labels": {"Zone_X": "lab"},
    }
    quiet = quiet_node(cli, "quiet")
    drained = run("node", "drain", quiet)
    assert drained["name"] == quiet and drained["moving"] == [] and drained["result"]
    assert run("node", "undrain", quiet)["name"] == quiet

    sent = run("command", "send", "pi-1", "--code", "print(1)", "--wait")
    assert [(c["id"] > 0, c["response"]) for c in sent] == [(True, "1\n")]
    command_id = str(sent[0]["id"])
    assert run("command", "show", command_id)["id"] == sent[0]["id"]
    analyzed = run("command", "analyze", command_id, "fine")
    assert analyzed["state"] == "analyzed"
    assert analyzed["result"] == f"command {command_id} analyzed"
    waiting = run("command", "send", quiet, "--code", "print(2)")
    canceled = run("command", "cancel", str(waiting[0]["id"]))
    assert canceled["state"] == "canceled" and "canceled" in canceled["result"]
    assert [c["id"] for c in run("command", "list", "--limit", "2")] == [
        waiting[0]["id"],
        sent[0]["id"],
    ]

    wait_until(
        lambda: any(n["name"] == quiet and n["status"] == "dead" for n in run("node", "list")),
        "the quiet node to die",
    )
    assert run("node", "forget", quiet)["result"]
    for name in ("counter", "mon"):
        assert run("project", "remove", name) == {"name": name, "result": f"removed {name}"}
    assert run("project", "list") == []

    # Every controller command that prints something was run above.
    commands = {
        "project add", "project show", "project list", "project set", "project vars",
        "project stop", "project start", "project restart", "project reset", "project rollout",
        "project remove", "node list", "node label", "node drain", "node undrain", "node forget",
        "command send", "command show", "command analyze", "command cancel", "command list",
    }  # fmt: skip
    assert commands <= {" ".join(r.split()[:2]) for r in run.ran}
    assert any(r.startswith("logs ") for r in run.ran)


def test_logs_follow_json_prints_one_object_per_line(cli: Cli) -> None:
    repo = Repo.create(cli.tmp / "repos" / "follow", {"counter.py": COUNTER})
    command = f"{sys.executable} counter.py"
    assert cli("project", "add", "follow", repo.url, "--command", command).returncode == 0
    argv = [sys.executable, "-m", "syncopate", "logs", "follow", "-f", "-n", "1", "--json"]
    try:
        with subprocess.Popen(argv, env=cli.env, stdout=subprocess.PIPE, text=True) as follow:
            assert follow.stdout is not None
            try:
                objects = [json.loads(follow.stdout.readline()) for _ in range(3)]
            finally:
                follow.send_signal(signal.SIGINT)  # how following ends
                assert follow.wait(10) == 0
    finally:
        assert cli("project", "remove", "follow").returncode == 0
    assert [set(o) for o in objects] == [{"name", "seq", "time", "line"}] * 3
    assert all(o["time"].endswith("Z") for o in objects)  # ISO 8601 UTC
    assert [o["seq"] for o in objects] == list(range(objects[0]["seq"], objects[0]["seq"] + 3))
    assert all(o["name"] == "follow" and o["line"].startswith("count ") for o in objects)


@pytest.mark.parametrize(
    ("args", "code", "status", "words"),
    [
        (("project", "show", "ghost"), 404, 1, "no project named 'ghost'"),
        (("node", "drain", "ghost"), 404, 1, "no node named 'ghost'"),
        (("project", "stop"), 2, 2, "name the projects to stop, or give --all"),
        (("project", "stop", "x", "--all"), 2, 2, "name the projects to stop or give --all, not"),
        (("logs",), 2, 2, "name a project, or give --all"),
        (("ls",), 2, 2, "Did you mean 'syncopate project list'?"),
        (("project", "add", "x", "ext::sh -c id"), 400, 1, "ext:: and others are refused"),
        (("project", "remove", "--token", "wrong"), 2, 2, "Missing argument"),
        (("project", "list", "--token", "wrong"), 401, 1, "refused the controller token"),
        (("node", "list", "--manager", "http://127.0.0.1:9"), 1, 1, "cannot reach the manager"),
        (("logs", "x", "--lines", "0"), 2, 2, "--lines"),
        (("command", "show", "999999"), 404, 1, "999999"),
        (("project", "nonsense"), 2, 2, "No such command"),
    ],
)
def test_errors_under_json_are_one_json_object(
    cli: Cli, args: tuple[str, ...], code: int, status: int, words: str
) -> None:
    done = cli(*args, "--json")
    assert done.returncode == status, (done.stdout, done.stderr)
    assert json.loads(done.stdout) == {"error": done_error(done), "code": code}
    assert words in done_error(done)
    assert done.stderr == f"error: {done_error(done)}\n"  # the line a person reads, as ever


def done_error(done: subprocess.CompletedProcess[str]) -> str:
    error: str = json.loads(done.stdout)["error"]
    return error


def test_bad_keys_finds_what_is_not_kebab_case() -> None:
    """The checker itself: it would see a snake or an upper-case key, not the user's."""
    data = {"initial_variables": {}, "a": [{"exitCode": 1}], "env": {"MY_ENV": "x"}}
    assert bad_keys(data) == [".initial_variables", ".a[0].exitCode"]

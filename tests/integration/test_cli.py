"""The controller CLI as a person runs it: `python -m syncopate ...` subprocesses against a real
manager subprocess with a real agent, a real git repository and a real project process."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from syncopate.client import ManagerClient
from tests.gitrepos import Repo
from tests.integration.test_agent import COUNTER
from tests.procs import ManagerProcess, manager_process, wait_until

pytestmark = pytest.mark.slow
T = TypeVar("T")
PASSWORD = "cli-password"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "syncopate", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def one_error_line(done: subprocess.CompletedProcess[str], status: int = 1) -> str:
    """The single `error: ...` line of a failed command (and nothing else, no traceback);
    it exits `status` (2 for a usage error)."""
    assert done.returncode == status, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    return lines[0]


@dataclass
class Cli:
    """The CLI pointed at one manager through the environment, as a script would."""

    manager: ManagerProcess
    env: dict[str, str]
    tmp: Path

    def __call__(self, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, env={**self.env, **extra_env})

    def json(self, *args: str) -> Any:
        done = self(*args, "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def project(self, name: str) -> dict[str, Any]:
        shown: dict[str, Any] = self.json("project", "show", name)
        return shown


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with cli_with_agent(tmp_path_factory.mktemp("cli"), node_timeout=5) as running:
        yield running


@contextmanager
def cli_with_agent(tmp: Path, node_timeout: float, password: str = PASSWORD) -> Iterator[Cli]:
    """A manager process and one agent (pi-1) under `tmp`, and the CLI pointed at them."""
    with manager_process(tmp / "manager", password=password, node_timeout=node_timeout) as manager:
        url = manager.start()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCOPATE_")} | {
            "SYNCOPATE_HOME": str(tmp / "home"),  # no controller.json there
            "SYNCOPATE_MANAGER": url,
            "SYNCOPATE_TOKEN": manager.token,
        }
        command = [sys.executable, "-m", "syncopate.node", url, "--name", "pi-1"]
        command += ["--data-dir", str(tmp / "node"), "--interval", "0.2"]
        agent = subprocess.Popen(
            command,
            env=env | {"SYNCOPATE_PASSWORD": password},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            running = Cli(manager, env, tmp)
            wait_until(
                lambda: any(n["status"] == "alive" for n in running.json("node", "list")),
                "the agent to join",
            )
            yield running
        finally:
            agent.send_signal(signal.SIGTERM)
            try:
                assert agent.wait(20) == 0
            except subprocess.TimeoutExpired:
                agent.kill()
                raise


# errors ---------------------------------------------------------------------------------------
def test_no_manager_anywhere_says_how_to_name_one(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCOPATE_")}
    env["SYNCOPATE_HOME"] = str(tmp_path)
    line = one_error_line(run_cli("project", "list", env=env))
    assert "no manager to talk to" in line and "--manager" in line and "SYNCOPATE_MANAGER" in line


def test_unreachable_manager_names_the_url_and_where_it_came_from(cli: Cli) -> None:
    line = one_error_line(cli("node", "list", SYNCOPATE_MANAGER="http://127.0.0.1:9"))
    assert "cannot reach the manager at http://127.0.0.1:9" in line
    assert "is it running?" in line and "SYNCOPATE_MANAGER" in line


def test_wrong_token_is_one_line_naming_its_source(cli: Cli) -> None:
    line = one_error_line(cli("project", "list", "--token", "not-the-token"))
    assert f"the manager at {cli.manager.url} refused the controller token (from --token)" in line
    assert "syncopate manager token" in line
    line = one_error_line(cli("project", "list", SYNCOPATE_TOKEN="also-wrong"))
    assert "(from SYNCOPATE_TOKEN)" in line


def test_bad_input_changes_nothing(cli: Cli, tmp_path: Path) -> None:
    repo = Repo.create(tmp_path / "repo", {"counter.py": COUNTER})
    before = cli.json("project", "list")
    for args, reason in [
        (("project", "add", "../../etc", repo.url), "project name '../../etc' is not valid"),
        (("project", "add", "x", "ext::sh -c id"), "ext:: and others are refused"),
        (("project", "add", "x", repo.url, "--var", "no-equals"), "is not KEY=VALUE"),
        (("project", "add", "x", repo.url, "--vars-file", "/nonexistent.json"), "cannot read"),
        (("project", "add", "x", repo.url, "--env", "NOEQUALS"), "is not NAME=VALUE"),
        (("project", "add", "x", repo.url, "--env", "SYNCOPATE_NODE=x"), "is reserved"),
        (("project", "set", "ghost", "--ram", "1"), "no project named 'ghost'"),
        (("project", "set", "x", "--url", "ext::sh -c id"), "ext:: and others are refused"),
        (("project", "vars", "ghost", "a=1"), "no project named 'ghost'"),
    ]:
        assert reason in one_error_line(cli(*args))
    # Usage errors: exit 2 (README), and the words fit the case, none given or both.
    for args, reason in [
        (("project", "vars", "x"), "give the variables to write as KEY=VALUE"),
        *[
            ((("project", verb), f"name the projects to {verb}, or give --all"))
            for verb in ("start", "stop", "restart", "reset")
        ],
        (("project", "stop", "x", "--all"), "name the projects to stop or give --all, not both"),
        (("project", "vars", "a=1"), "name the projects, or give --all"),
        (("project", "vars", "x", "a=1", "--all"), "name the projects or give --all, not both"),
    ]:
        assert one_error_line(cli(*args), status=2) == f"error: {reason}"
    assert cli.json("project", "list") == before


def test_misspelt_names_get_a_suggestion(cli: Cli, tmp_path: Path) -> None:
    repo = Repo.create(tmp_path / "repo", {"counter.py": COUNTER})
    assert cli("project", "add", "speller", repo.url, "--no-start").returncode == 0
    try:
        for args in [("project", "show", "speler"), ("project", "stop", "speler")]:
            line = one_error_line(cli(*args))
            assert line == "error: no project named 'speler'; did you mean 'speller'?"
        line = one_error_line(cli("node", "drain", "pi-2"))
        assert line == "error: no node named 'pi-2'; did you mean 'pi-1'?"
        assert "there are no" not in one_error_line(cli("project", "show", "zzzzzz"))
    finally:
        assert cli("project", "remove", "speller").returncode == 0


# the project life cycle, with --json shapes ---------------------------------------------------
def test_add_list_show_control_and_remove(cli: Cli) -> None:
    repo = Repo.create(cli.tmp / "repos" / "counter", {"counter.py": COUNTER})
    vars_file = cli.tmp / "vars.json"
    vars_file.write_text('{"count": 100, "label": "from-file"}', encoding="utf-8")
    done = cli(
        "project", "add", "counter", repo.url, "--command", f"{sys.executable} counter.py",
        "--vars-file", str(vars_file), "--var", "label=from-flag", "--var", "limits=[1, 2]",
        "--ram", "10",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "added counter; placed on pi-1"

    info = wait_until(
        lambda: (
            (p := cli.project("counter"))["status"] == "running"
            and p["persistent-variables"].get("count", 0) > 100
            and p
        ),
        "counter to run and count",
    )
    assert info["name"] == "counter" and info["node"] == "pi-1"
    assert info["initial-variables"] == {"count": 100, "label": "from-flag", "limits": [1, 2]}
    assert info["commit"] == repo.head() and info["ram-needed"] == 10

    listed = cli.json("project", "list")
    assert isinstance(listed, list)
    row = next(item for item in listed if item["name"] == "counter")
    assert row["name"] == "counter" and row["status"] == "running"
    assert "project-name" not in row  # `name` says it (output.RENAMES)
    nodes = cli.json("node", "list")
    assert [n["name"] for n in nodes] == ["pi-1"] and "counter" in nodes[0]["projects"]

    table = cli("project", "list")
    assert table.returncode == 0
    header, *rows = table.stdout.splitlines()
    assert header.split()[:3] == ["NAME", "STATUS", "NODE"]
    assert any(r.split()[:3] == ["counter", "running", "pi-1"] for r in rows)
    shown = cli("project", "show", "counter")
    assert "persistent variables" in shown.stdout and '"label": "from-flag"' in shown.stdout

    stopped = cli.json("project", "stop", "counter")  # an action on NAME ...: an array
    assert [(p["name"], p["desired"]) for p in stopped] == [("counter", "stopped")]
    assert stopped[0]["result"] == "stopped 1 project(s)"
    wait_until(lambda: cli.project("counter")["status"] == "stopped", "the stop")
    kept = cli.project("counter")["persistent-variables"]["count"]
    assert cli("project", "start", "counter").stdout.strip() == "started 1 project(s)"
    wait_until(
        lambda: cli.project("counter")["persistent-variables"]["count"] > kept,
        "counter to resume from its variables",
    )
    first_pid = cli.project("counter")["pid"]
    assert cli("project", "restart", "--all").stdout.strip().startswith("restarted ")
    wait_until(
        lambda: (
            (p := cli.project("counter"))["pid"] not in (None, first_pid)
            and p["status"] == "running"
        ),
        "a new process",
    )
    epoch = cli.project("counter")["epoch"]
    assert cli("project", "reset", "counter").returncode == 0
    wait_until(
        lambda: (
            (p := cli.project("counter"))["epoch"] > epoch
            and p["status"] == "running"
            and p["persistent-variables"]["count"] < kept
        ),
        "counter to start again from its initial 100",
    )

    done = cli("project", "remove", "counter")
    assert done.stdout.strip() == "removed counter"
    line = one_error_line(cli("project", "show", "counter"))
    assert "no project named 'counter'" in line


def test_env_and_set_in_place(cli: Cli) -> None:
    repo = Repo.create(cli.tmp / "repos" / "envy", {"counter.py": COUNTER})
    command = f"{sys.executable} counter.py"
    done = cli("project", "add", "envy", repo.url, "--command", command, "--env", "A=1=2")
    assert done.returncode == 0, done.stderr
    try:
        first = wait_until(
            lambda: (p := cli.project("envy"))["status"] == "running" and p, "envy to run"
        )
        assert first["env"] == {"A": "1=2"}
        done = cli("project", "set", "envy", "--env", "B=x", "--unset-env", "A", "--ram", "2")
        assert done.stdout == "changed envy: env, ram\n", done.stderr
        info = wait_until(
            lambda: (
                (p := cli.project("envy"))["pid"] not in (None, first["pid"])
                and p["status"] == "running"
                and p
            ),
            "envy to restart with its new env",
        )
        assert info["env"] == {"B": "x"} and info["ram-needed"] == 2 and info["node"] == "pi-1"
        assert [h["fields"] for h in info["history"]] == [["env", "ram"]]
        shown = cli("project", "show", "envy").stdout
        assert "B=x" in shown and ": env, ram" in shown
        unchanged = cli.json("project", "set", "envy", "--ram", "2")
        assert unchanged["changed"] == [] and unchanged["name"] == "envy"
        assert cli("project", "set", "envy", "--ram", "2").stdout == "envy: nothing changed\n"
        done = cli("project", "vars", "envy", "count=7", "mode=fast")
        assert done.stdout == "wrote count, mode into 1 project(s)\n", done.stderr
        wait_until(
            lambda: cli.project("envy")["persistent-variables"].get("mode") == "fast",
            "envy to run with the written variables",
        )
    finally:
        cli("project", "remove", "envy")


def test_add_without_a_fitting_node_says_why(cli: Cli, tmp_path: Path) -> None:
    repo = Repo.create(tmp_path / "repo", {"counter.py": COUNTER})
    done = cli("project", "add", "huge", repo.url, "--ram", "1e9")
    try:
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("added huge; not placed: no live node has")
    finally:
        cli("project", "remove", "huge")


# install-service ------------------------------------------------------------------------------
def test_install_service_writes_a_user_unit_and_a_private_password_file(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCOPATE_")}
    env |= {"XDG_CONFIG_HOME": str(tmp_path / "config"), "SYNCOPATE_PASSWORD": "s3cret pw"}
    data_dir = tmp_path / "node data"
    done = run_cli(
        "node", "install-service", "https://192.168.1.10:8470", "--user", "--name", "pi-7",
        "--data-dir", str(data_dir), "--label", "room=lab", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    unit_path = tmp_path / "config" / "systemd" / "user" / "syncopate-node.service"
    assert f"wrote {unit_path}" in done.stdout
    assert "systemctl --user daemon-reload && systemctl --user enable --now syncopate-node" in (
        done.stdout
    )
    unit = unit_path.read_text(encoding="utf-8")
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    assert exec_start.startswith(f"ExecStart={sys.executable} -m syncopate.node ")
    assert "https://192.168.1.10:8470 --name pi-7" in exec_start
    assert f'--data-dir "{data_dir}"' in exec_start  # quoted: the path has a space
    assert "--label room=lab" in exec_start
    assert "s3cret" not in unit  # the password is not in the world-readable unit
    assert "KillMode=mixed" in unit and "WantedBy=default.target" in unit
    assert "User=" not in unit  # a user unit runs as its user
    env_file = data_dir / "join.env"
    assert f"EnvironmentFile=-{env_file}" in unit
    assert env_file.read_text(encoding="utf-8") == "SYNCOPATE_PASSWORD=s3cret pw\n"
    assert env_file.stat().st_mode & 0o777 == 0o600


def test_install_service_print_writes_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCOPATE_")}
    done = run_cli(
        "node", "install-service", "https://m:8470", "--password", "pw", "--print",
        "--unit-dir", str(tmp_path / "units"), "--data-dir", str(tmp_path / "data"), env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("[Unit]\n") and "WantedBy=multi-user.target" in done.stdout
    assert "User=" in done.stdout  # a system unit never runs the agent as root by accident
    assert not (tmp_path / "units").exists() and not (tmp_path / "data").exists()


def test_install_service_takes_several_managers_and_checks_each(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCOPATE_")}
    both = "https://m1:8470,https://m2:8470"
    done = run_cli(
        "node", "install-service", both, "--password", "pw", "--print",
        "--data-dir", str(tmp_path / "data"), env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    exec_start = next(line for line in done.stdout.splitlines() if line.startswith("ExecStart="))
    assert f" {both} " in exec_start  # the agent moves between them (DESIGN §13)
    # Plain HTTP beyond loopback is refused for any one of them, naming it.
    done = run_cli(
        "node", "install-service", "http://127.0.0.1:8470,http://10.1.2.3:8470",
        "--password", "pw", "--print", "--data-dir", str(tmp_path / "data"), env=env,
    )  # fmt: skip
    assert done.returncode == 2  # a usage error
    assert done.stderr.startswith(
        "error: refusing to send the join password and the node's token in clear to "
        "http://10.1.2.3:8470:"
    )
    assert "Traceback" not in done.stderr


def test_install_service_without_permission_says_what_to_do(tmp_path: Path) -> None:
    # As root (CI containers) /etc is writable, so point at a place nobody can write to.
    target = Path("/proc/syncopate-test") if os.geteuid() == 0 else Path("/etc/systemd/system")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCOPATE_")}
    done = run_cli(
        "node", "install-service", "https://m:8470", "--password", "pw",
        "--unit-dir", str(target), "--data-dir", str(tmp_path / "data"), env=env,
    )  # fmt: skip
    line = one_error_line(done)
    assert line.startswith("error: cannot write ")


# logs -----------------------------------------------------------------------------------------
def test_logs_show_a_real_projects_output_and_follow_new_lines(cli: Cli, tmp_path: Path) -> None:
    repo = Repo.create(tmp_path / "repo", {"counter.py": COUNTER})
    done = cli("project", "add", "chatty", repo.url, "--command", f"{sys.executable} counter.py")
    assert done.returncode == 0, done.stderr
    try:

        def printed() -> list[str] | None:
            out = cli("logs", "chatty", "-n", "5")
            lines = out.stdout.splitlines()
            return lines if out.returncode == 0 and len(lines) == 5 else None

        lines = wait_until(printed, "five lines of output at the manager")
        # Each line as `2026-12-03 12:01:02 count 7`: when it was printed, then the line.
        assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d count ", line) for line in lines)
        counts = [int(line.split()[3]) for line in lines]
        assert counts == list(range(counts[0], counts[0] + 5))  # consecutive, oldest first

        follower = subprocess.Popen(
            [sys.executable, "-m", "syncopate", "logs", "chatty", "--follow", "-n", "1"],
            env=cli.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert follower.stdout is not None
            seen = [int(follower.stdout.readline().split()[3]) for _ in range(8)]
            # New lines arrive as the project prints them: each once, in order, none missing.
            assert seen == list(range(seen[0], seen[0] + 8))
            assert seen[-1] > counts[-1]
        finally:
            follower.send_signal(signal.SIGINT)
            _, err = follower.communicate(timeout=10)
        assert follower.returncode == 0 and "Traceback" not in err
    finally:
        cli("project", "remove", "chatty")
    line = one_error_line(cli("logs", "chatty"))
    assert "no project named 'chatty'" in line


def test_logs_of_a_project_without_output_yet(cli: Cli, tmp_path: Path) -> None:
    repo = Repo.create(tmp_path / "repo", {"counter.py": COUNTER})
    assert cli("project", "add", "quiet", repo.url, "--no-start").returncode == 0
    try:
        done = cli("logs", "quiet")
        assert done.returncode == 0 and done.stdout == ""
        assert done.stderr.strip() == "no output from quiet yet"
    finally:
        cli("project", "remove", "quiet")


def test_command_send_wait_prints_the_response_and_exits_with_its_status(cli: Cli) -> None:
    done = cli("command", "send", "pi-1", "--code", "print('hi from', 6 * 7)", "--wait")
    assert (done.returncode, done.stdout) == (0, "hi from 42\n"), done.stderr
    done = cli("command", "send", "pi-1", "--sh", "--code", "echo out; exit 7", "--wait")
    assert (done.returncode, done.stdout) == (7, "out\n"), done.stderr
    done = cli("command", "send", "pi-1", "--sh", "--code", "sleep 30", "--timeout=0.5", "--wait")
    assert (done.returncode, done.stdout) == (124, "TIMEOUT\n"), done.stderr


def test_command_send_from_a_file_prints_the_id_then_show_and_analyze(
    cli: Cli, tmp_path: Path
) -> None:
    program = tmp_path / "probe.py"
    program.write_text("import platform\nprint(platform.system())\n", encoding="utf-8")
    done = cli("command", "send", "pi-1", "--file", str(program))
    assert done.returncode == 0, done.stderr
    command_id = done.stdout.strip()
    assert command_id.isdigit()

    def responded() -> dict[str, Any] | None:
        shown: dict[str, Any] = cli.json("command", "show", command_id)
        return shown if shown["state"] == "responded" else None

    info = wait_until(responded, "the command to be answered")
    assert info["response"] == "Linux\n" and info["code"] == program.read_text()
    shown = cli("command", "show", command_id)
    assert shown.returncode == 0
    for word in ("requested", "collected", "responded", "pi-1", "Linux"):
        assert word in shown.stdout
    assert cli("command", "analyze", command_id, "a Linux box").stdout == (
        f"command {command_id} analyzed\n"
    )
    again = one_error_line(cli("command", "analyze", command_id, "twice"))
    assert f"command {command_id} is analyzed" in again
    listed = cli.json("command", "list", "--state", "analyzed")
    assert [c["id"] for c in listed] == [int(command_id)]


def test_command_list_and_cancel(cli: Cli) -> None:
    """A command for a node that is not there waits; it can be canceled, once."""
    joined = cli("command", "send", "pi-1", "--code", "print(1)", "--wait")
    assert joined.returncode == 0
    done = cli("command", "send", "ghost-node", "--code", "print(1)")
    assert "no node named 'ghost-node'" in one_error_line(done)
    table = cli("command", "list", "--node", "pi-1")
    assert table.returncode == 0 and "ID" in table.stdout and "pi-1" in table.stdout
    bad = one_error_line(cli("command", "list", "--state", "finished"))
    assert "not a command state" in bad
    usage = cli("command", "send", "pi-1")
    assert usage.returncode == 2 and "--code" in usage.stderr


def test_command_send_to_an_offline_node_times_out_at_pickup(cli: Cli) -> None:
    """A node that joined and went quiet: --wait ends with the reason and exit 124."""

    async def join() -> str:
        async with ManagerClient(cli.env["SYNCOPATE_MANAGER"]) as node:
            name, _ = await node.initialize(PASSWORD, "quiet", agent_version="test")
            return name

    name = asyncio.run(join())
    assert cli("node", "drain", name).returncode == 0  # no project of the other tests goes there
    done = cli("command", "send", name, "--code", "print(1)", "--pickup", "0.5", "--wait")
    assert done.returncode == 124, (done.stdout, done.stderr)
    assert done.stdout == ""
    assert f"on {name} timed out: not collected within 0.5s" in done.stderr

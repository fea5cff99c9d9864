"""The CLI at 80 columns, as a new user meets it (issue 16): every listing a line a row, help
that reads well, aliases and suggestions, and errors in words rather than wire names or library
text. Real manager and agent processes, real git repositories, the real `python -m syncopate`."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from syncopate.cli.main import app
from syncopate.cli.reference import _commands
from tests.gitrepos import Repo
from tests.integration.test_agent import COUNTER
from tests.integration.test_cli import Cli, cli_with_agent
from tests.procs import wait_until

pytestmark = pytest.mark.slow
LONG_NAME = "weather-station-logger-in-the-greenhouse"
GPU_NAME = "needs-a-gpu-that-no-node-in-this-fleet-has"
LABELS = ("room=the-big-lab-upstairs", "rack=r12-left", "shelf=top", "power=usb-c-hub-3")


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with cli_with_agent(tmp_path_factory.mktemp("cli80"), node_timeout=5) as running:
        yield running


def at_80(cli: Cli, *args: str) -> list[str]:
    done = cli(*args, COLUMNS="80")
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def fits(lines: list[str], rows: int) -> None:
    """Every line at most 80 characters, and exactly a header and one line per row."""
    shown = "\n".join(lines)
    assert all(len(line) <= 80 for line in lines), shown
    assert len(lines) == rows + 1, shown


# 80 columns -----------------------------------------------------------------------------------
def test_every_listing_fits_80_columns_a_line_a_row(cli: Cli, tmp_path: Path) -> None:
    repo = Repo.create(tmp_path / "repo", {"counter.py": COUNTER})
    run = f"{sys.executable} counter.py"
    assert cli("node", "label", "pi-1", *LABELS).returncode == 0
    for name, extra in [
        (LONG_NAME, ()),
        ("short", ()),
        (GPU_NAME, ("--on", "gpu=yes", "--on", "camera=attached-to-the-front-usb-port")),
    ]:
        done = cli("project", "add", name, repo.url, "--command", run, *extra)
        assert done.returncode == 0, done.stderr
    code = "import platform  # " + "a long comment " * 8 + "\nprint(platform.node())"
    assert cli("command", "send", "pi-1", "--code", code, "--wait").returncode == 0
    wait_until(
        lambda: cli.project(LONG_NAME)["status"] == "running", f"{LONG_NAME} to run", timeout=60
    )
    reason = str(cli.project(GPU_NAME)["reason"])
    assert len(reason) > 40, reason  # long enough to have wrapped a word a line before

    listed = at_80(cli, "project", "list")
    fits(listed, rows=3)
    rows = {line.split()[0]: line for line in listed[1:]}
    assert set(rows) == {LONG_NAME, "short", GPU_NAME}  # names whole, never `weather-st…`
    assert "REASON" in listed[0] and rows[GPU_NAME].rstrip().endswith("…")
    assert rows[GPU_NAME].split()[1] == "unschedulable"
    assert rows[LONG_NAME].split()[1:3] == ["running", "pi-1"]
    wide = cli("project", "show", GPU_NAME, COLUMNS=str(len(reason) + 40))
    assert reason in wide.stdout  # the whole reason is in `show`

    nodes = at_80(cli, "node", "list")
    fits(nodes, rows=1)
    assert nodes[1].split()[:2] == ["pi-1", "alive"]
    commands = at_80(cli, "command", "list")
    fits(commands, rows=len(cli.json("command", "list")))
    assert "import platform" in commands[1] and commands[1].rstrip().endswith("…")


# help -----------------------------------------------------------------------------------------
def every_command() -> list[list[str]]:
    root = typer.main.get_command(app)
    groups = [[name] for name in ("project", "node", "manager", "command")]
    return [[], *groups, *(path[1:] for path, _ in _commands(root, ["syncopate"]))]


@pytest.mark.parametrize("path", every_command(), ids=lambda p: " ".join(p) or "syncopate")
def test_help_reads_well_at_80_columns(path: list[str]) -> None:
    out = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert out.exit_code == 0, out.output
    text = out.output
    assert all(len(line) <= 80 for line in text.splitlines()), text
    for odd in ("<bool>", "<str>", "{", "[default: 0.0]", "[default: 0]", "syncopate-password"):
        assert odd not in text, (odd, text)


def console_script(*args: str) -> subprocess.CompletedProcess[str]:
    """`syncopate ...` through the installed console script (its usage says `syncopate`)."""
    script = Path(sys.executable).with_name("syncopate")
    env = os.environ | {"COLUMNS": "80"}
    return subprocess.run([script, *args], capture_output=True, text=True, timeout=60, env=env)


def test_usage_lines_name_arguments_in_capitals() -> None:
    done = console_script("project", "add", "--help")
    assert done.returncode == 0, done.stderr
    assert "Usage: syncopate project add [OPTIONS] NAME URL" in done.stdout
    # What validate.check_git_url takes, a plain absolute path too.
    assert "an absolute" in done.stdout and "git://" in done.stdout
    assert "(default: no limit)" in done.stdout  # --max-ram's 0
    done = console_script("project", "add", "only-a-name")
    assert done.returncode == 2 and "Missing argument 'URL'" in done.stderr


VERY_LONG_NAME = "the-weather-station-logger-in-the-greenhouse-behind-the-barn"  # 60


def test_a_very_long_name_is_cut_so_node_status_and_reason_stay(cli: Cli, tmp_path: Path) -> None:
    """Issue 16's tryout: a 57-character name at 80 columns (piped) left NAME and STATUS alone.
    The name is cut with `…` instead; --json has it whole."""
    repo = Repo.create(tmp_path / "repo", {"counter.py": COUNTER})
    done = cli("project", "add", VERY_LONG_NAME, repo.url, "--on", "gpu=yes")  # a reason
    assert done.returncode == 0, done.stderr
    try:
        listed = at_80(cli, "project", "list")
        fits(listed, rows=len(cli.json("project", "list")))
        assert listed[0].split()[:3] == ["NAME", "STATUS", "NODE"] and "REASON" in listed[0]
        row = next(line for line in listed if line.startswith(VERY_LONG_NAME[:40]))
        assert row.split()[0].endswith("…") and row.split()[1] == "unschedulable", row
        assert row.rstrip().endswith("…")  # the reason, cut to the room left
        assert cli.json("project", "show", VERY_LONG_NAME)["name"] == VERY_LONG_NAME
    finally:
        assert cli("project", "remove", VERY_LONG_NAME).returncode == 0


# aliases --------------------------------------------------------------------------------------
def test_ls_and_rm_are_list_and_remove(cli: Cli, tmp_path: Path) -> None:
    repo = Repo.create(tmp_path / "repo", {"counter.py": COUNTER})
    assert cli("project", "add", "to-go", repo.url, "--no-start").returncode == 0
    names = [p["name"] for p in cli.json("project", "list")]
    assert [p["name"] for p in cli.json("project", "ls")] == names and "to-go" in names
    assert [n["name"] for n in cli.json("node", "ls")] == ["pi-1"]
    assert cli("command", "ls").returncode == 0
    done = cli("project", "rm", "to-go")
    assert done.returncode == 0 and done.stdout.strip() == "removed to-go", done.stderr
    assert "to-go" not in [p["name"] for p in cli.json("project", "ls")]


@pytest.mark.parametrize(
    ("typed", "meant"),
    [("lst", "'list'"), ("ps", "'list'"), ("delete", "'remove'"), ("shwo", "'show'")],
)
def test_an_unknown_command_gets_a_did_you_mean(typed: str, meant: str) -> None:
    done = console_script("project", typed, "x")
    assert done.returncode == 2
    assert f"No such command '{typed}'. Did you mean {meant}" in done.stderr, done.stderr
    assert "'ls'" not in done.stderr and "'rm'" not in done.stderr  # aliases are not offered


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("ls", "project list"),
        ("ps", "project list"),
        ("status", "project list"),
        ("rm", "project remove"),
        ("nodes", "node list"),
        ("top", "tui"),
    ],
)
def test_another_tools_word_at_the_root_names_the_command_here(typed: str, meant: str) -> None:
    done = console_script(typed)
    assert done.returncode == 2
    # Not `logs`, which `ls` merely looks like.
    assert done.stderr == f"error: No such command '{typed}'. Did you mean 'syncopate {meant}'?\n"


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (("projct", "list"), "No such command 'projct'. Did you mean 'project'?"),
        (("logs",), "name a project, or give --all"),
        (("logs", "x", "--all"), "name a project or give --all, not both"),
        (("project", "stop"), "name the projects to stop, or give --all"),
        (("project", "remove"), "Missing argument 'NAME'."),
        (("command", "send", "pi-1"), "give the program with --code C or --file F"),
    ],
)
def test_a_usage_error_is_one_error_line_and_exit_2(args: tuple[str, ...], line: str) -> None:
    """README: one `error: ...` line, not Typer's box of usage text."""
    done = console_script(*args)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", f"error: {line}\n")


# errors in words ------------------------------------------------------------------------------
def test_a_wrong_join_password_says_so_in_words(cli: Cli, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "syncopate", "node", "join", cli.manager.url, "--name", "pi-9",
         "--password", "not-the-password", "--data-dir", str(tmp_path / "node")],
        capture_output=True, text=True, timeout=60, env=cli.env,
    )  # fmt: skip
    assert done.returncode == 1
    assert "error: wrong join password; ask the manager's owner for it" in done.stderr
    assert "syncopate-password" not in done.stderr


def lines_of(stream: Any) -> queue.Queue[str | None]:
    """The lines of a pipe as they come, on a queue (None at its end), to read with timeouts."""
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        with stream:  # closed here, at its end (the process has exited)
            for line in stream:
                lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


def next_line(lines: queue.Queue[str | None], what: str, timeout: float = 30) -> str:
    try:
        line = lines.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"no {what} within {timeout} s") from None
    assert line is not None, f"the stream ended before {what}"
    return line


def test_logs_follow_says_it_lost_the_manager_in_a_sentence(tmp_path: Path) -> None:
    # Its own manager: this test stops it.
    with cli_with_agent(tmp_path / "fleet", node_timeout=5) as own:
        repo = Repo.create(tmp_path / "repo", {"counter.py": COUNTER})
        done = own(
            "project", "add", "chatty", repo.url, "--command", f"{sys.executable} counter.py"
        )
        assert done.returncode == 0, done.stderr
        follower = subprocess.Popen(
            [sys.executable, "-m", "syncopate", "logs", "chatty", "--follow", "-n", "1"],
            env=own.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            out, err = lines_of(follower.stdout), lines_of(follower.stderr)
            # `2026-12-03 12:01:02 count 7`: each line with its time.
            first = next_line(out, "a line of output")
            assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d count ", first), first
            own.manager.stop()
            said = [next_line(err, "a word about the lost manager")]
            while "(connection refused)" not in said[-1] and len(said) < 5:
                said.append(next_line(err, "a word about the lost manager"))
        finally:
            follower.send_signal(signal.SIGINT)
            follower.wait(timeout=10)
    # First the manager closed the feed; then nothing listens at its address any more.
    assert said[0].startswith("lost the manager (it closed the connection); trying again in")
    assert said[-1].startswith("lost the manager (connection refused); trying again in "), said
    assert all(line.startswith("lost the manager (") for line in said), said

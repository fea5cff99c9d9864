"""`syncopate tui` in a real terminal: tmux runs it against a real manager subprocess with a real
agent and a real project; the test reads the screen with `capture-pane` and types with
`send-keys`, one key at a time, waiting for each key's visible effect before the next.

Every tmux call uses a private server (`tmux -L <unique>` with no config file), so a user's own
tmux is never touched; the server is killed whatever happens.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from syncopate.client import ManagerClient
from tests.gitrepos import Repo
from tests.procs import ManagerProcess, manager_process, wait_until

pytestmark = pytest.mark.slow
T = TypeVar("T")
PASSWORD = "tui-password"
PROJECT = "ticker"
WIDTH, HEIGHT = 100, 30
TICKER = """\
import time

n = 0
while True:
    n += 1
    print("tick", n, flush=True)
    time.sleep(0.2)
"""


def clean_environment() -> dict[str, str]:
    """The test's environment without manager settings, an enclosing tmux, or a terminal size.

    pytest-xdist's workers run with COLUMNS=80 and LINES=24 in their environment; a program
    that inherits them takes them for its terminal's size and never follows a resize.
    """
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SYNCOPATE_") and k not in ("TMUX", "TMUX_PANE", "COLUMNS", "LINES")
    }


def call(url: str, token: str, what: Callable[[ManagerClient], Awaitable[T]]) -> T:
    """One manager call with a fresh client (the test itself is synchronous)."""

    async def go() -> T:
        async with ManagerClient(url, token) as client:
            return await what(client)

    return asyncio.run(go())


class Tmux:
    """A private tmux server (its own socket, no config file) holding one session."""

    def __init__(self, tmp: Path) -> None:
        self.tool = shutil.which("tmux")
        if self.tool is None:
            pytest.fail("tmux is not installed: .ci/run installs it (apt-get install tmux)")
        self.socket = f"syncopate-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.session = "tui"
        self.tmp = tmp
        self.last = ""
        self.socket_path = ""

    def __call__(self, *args: str) -> str:
        assert self.tool is not None
        done = subprocess.run(
            [self.tool, "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            timeout=10,
            env=clean_environment(),
        )
        assert done.returncode == 0, f"tmux {' '.join(args)} failed: {done.stderr}"
        return done.stdout

    def start(
        self, script: str, env: dict[str, str], width: int = WIDTH, height: int = HEIGHT
    ) -> None:
        """Run `bash -c script` in a detached `width`x`height` session, with `env` added."""
        args = ["new-session", "-d", "-s", self.session, "-x", str(width), "-y", str(height)]
        args += ["-c", str(self.tmp)]
        for key, value in env.items():
            args += ["-e", f"{key}={value}"]
        self(*args, "bash", "-c", script)
        self.socket_path = self("display-message", "-p", "#{socket_path}").strip()

    def screen(self) -> str:
        """The pane's text as it is on the terminal now."""
        self.last = self("capture-pane", "-p", "-t", self.session)
        return self.last

    def send(self, key: str, *, literal: bool = False) -> None:
        self("send-keys", "-t", self.session, *(["-l"] if literal else []), key)

    def wait(self, check: Callable[[str], object], what: str, timeout: float = 15.0) -> str:
        """Poll the screen until `check(screen)` is truthy; fail showing the last screen."""
        try:
            wait_until(
                lambda: (screen := self.screen()) and check(screen) and screen, what, timeout
            )
        except AssertionError:
            raise AssertionError(
                f"timed out waiting for {what}; the screen:\n{self.last}"
            ) from None
        return self.last

    def modes(self) -> dict[str, str]:
        """The terminal modes the program in the pane left on: alternate screen, mouse
        reporting, visible cursor ("1" on, "0" off)."""
        formats = {
            "alternate": "#{alternate_on}",
            "mouse": "#{mouse_any_flag}",
            "cursor": "#{cursor_flag}",
        }
        shown = self("display-message", "-p", "-t", self.session, " ".join(formats.values()))
        return dict(zip(formats, shown.split(), strict=True))

    def kill(self) -> None:
        """End the server and everything in it; remove its socket (tmux leaves it behind)."""
        assert self.tool is not None
        subprocess.run(
            [self.tool, "-L", self.socket, "kill-server"],
            capture_output=True,
            timeout=10,
            env=clean_environment(),
        )
        if self.socket_path.endswith(self.socket):
            Path(self.socket_path).unlink(missing_ok=True)


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    """A private tmux server (first: a missing tmux fails before anything starts)."""
    server = Tmux(tmp_path)
    try:
        yield server
    finally:
        server.kill()


@dataclass
class Fleet:
    manager: ManagerProcess
    url: str
    token: str
    tmp: Path

    def project(self) -> dict[str, Any]:
        return call(self.url, self.token, lambda c: c.status([PROJECT]))[PROJECT]


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    """A manager subprocess, an agent `pi-1` and a running project that prints `tick N`."""
    with manager_process(tmp_path / "manager", password=PASSWORD, node_timeout=5) as manager:
        url = manager.start()
        env = clean_environment() | {"SYNCOPATE_HOME": str(tmp_path / "home")}
        command = [sys.executable, "-m", "syncopate.node", url, "--name", "pi-1"]
        command += ["--data-dir", str(tmp_path / "node"), "--interval", "0.2"]
        agent = subprocess.Popen(
            command,
            env=env | {"SYNCOPATE_PASSWORD": PASSWORD},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            running = Fleet(manager, url, manager.token, tmp_path)
            wait_until(
                lambda: (
                    call(url, running.token, lambda c: c.nodes()).get("pi-1", {}).get("status")
                    == "alive"
                ),
                "the agent to join",
            )
            repo = Repo.create(tmp_path / "repos" / PROJECT, {"ticker.py": TICKER})
            added = call(
                url,
                running.token,
                lambda c: c.add(PROJECT, repo.url, command=f"{sys.executable} ticker.py"),
            )
            assert "pi-1" in str(added.get("request-information")), added
            wait_until(lambda: running.project()["status"] == "running", "the project to run")
            yield running
        finally:
            agent.send_signal(signal.SIGTERM)
            try:
                assert agent.wait(20) == 0
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait(10)
                raise


# The TUI as a person runs it; the shell reports its exit status on the screen once it ends.
TUI = shlex.join([sys.executable, "-m", "syncopate", "tui"]) + "; echo TUI-EXIT=$?; sleep 60"


def tui_environment(url: str, token: str, tmp: Path) -> dict[str, str]:
    return {
        "SYNCOPATE_MANAGER": url,
        "SYNCOPATE_TOKEN": token,
        "SYNCOPATE_HOME": str(tmp / "home"),  # no controller.json there
    }


def table_row(screen: str, name: str) -> str:
    """The line of the table row whose first cell is `name` ("" when no row shows it)."""
    for line in screen.splitlines():
        if line.startswith(f"│ {name} "):
            return line
    return ""


def project_row(screen: str) -> str:
    return table_row(screen, PROJECT)


def filter_box(screen: str) -> str | None:
    """The text in the filter box (its placeholder when empty); None when it is closed.

    The box is drawn `▊ text ... ▎` between lines of `▔` and `▁`; toasts may cover its right
    part (they start with `▌`)."""
    for line in screen.splitlines():
        if line.startswith("▊") and "▔" not in line and "▁" not in line:
            return line[1:].split("▌")[0].split("▎")[0].strip()
    return None


def output_ticks(screen: str) -> list[int]:
    """The numbers of the `HH:MM:SS tick N` lines in the output dialog (inside its border)."""
    found = []
    for line in screen.splitlines():
        words = line.strip("█ ").split()
        if len(words) == 3 and words[1] == "tick" and words[2].isdigit():
            assert re.fullmatch(r"\d\d:\d\d:\d\d", words[0]), f"no time first: {line!r}"
            found.append(int(words[2]))
    return found


def test_tui_in_a_real_terminal_shows_the_fleet_and_acts_on_keys(tmux: Tmux, fleet: Fleet) -> None:
    tmux.start(TUI, tui_environment(fleet.url, fleet.token, fleet.tmp))

    # the main screen: header, the node, the project running
    main = tmux.wait(
        lambda s: (
            "● nodes" in s
            and " connected" in s
            and "projects 1/1 running" in s
            and "alive" in table_row(s, "pi-1")
            and "running" in project_row(s)
        ),
        "the main screen with pi-1 and the project running",
    )
    print(f"the main screen:\n{main}")
    bar = main.splitlines()[0]
    assert fleet.url in bar and "nodes 1/1 alive" in bar, bar
    assert "disconnected" not in main and "Traceback" not in main

    # ? shows the keys; Esc goes back
    tmux.send("?")
    # the frame reaches the terminal in pieces: wait for the whole of it, not its title
    help_screen = tmux.wait(
        lambda s: "Keys — Esc closes" in s and "Restart" in s and "Quit" in s, "the help screen"
    )
    print(f"the help screen:\n{help_screen}")
    tmux.send("Escape")
    tmux.wait(lambda s: "Keys — Esc closes" not in s and project_row(s), "the main screen")

    # l shows the project's output, lines keep coming; Esc goes back
    tmux.send("l")
    logs = tmux.wait(
        lambda s: f"output of {PROJECT}" in s and "following (on pi-1)" in s and "tick " in s,
        "the project's output",
    )
    ticks = output_ticks(logs)
    assert ticks == list(range(ticks[0], ticks[0] + len(ticks))), logs
    tmux.wait(lambda s: ticks[-1] + 1 in output_ticks(s), "a new output line")
    tmux.send("Escape")
    tmux.wait(lambda s: f"output of {PROJECT}" not in s and project_row(s), "the main screen")

    # Enter shows the selected project's whole detail; Esc goes back. (After `l`: before it,
    # this step's time would give the output dialog more lines than it holds, and the ticks
    # under its scrollbar would not read.)
    tmux.send("Enter")
    detail = tmux.wait(
        lambda s: f"project {PROJECT}" in s and "Esc returns" in s and "esc Back" in s,
        "the project's full-screen detail",
    )
    print(f"the detail:\n{detail}")
    assert "status" in detail and "pi-1" in detail and "Traceback" not in detail
    tmux.send("Escape")
    # The main screen with its own keys in the footer (not only its tables drawn): a key sent
    # while the detail was still leaving would go to it. (Once, in CI, the `x` below had no
    # effect within 15 s: which of the key or the display was late is told apart below.)
    tmux.wait(
        lambda s: "Esc returns" not in s and project_row(s) and "x Stop" in s.splitlines()[-1],
        "the main screen and its keys",
    )

    # x stops the selected project: the manager says so, then the table
    tmux.send("x")
    try:
        wait_until(lambda: fleet.project()["desired"] == "stopped", "a stop after `x`")
    except AssertionError:
        raise AssertionError(
            f"`x` asked the manager for no stop; the screen:\n{tmux.screen()}"
        ) from None
    tmux.wait(
        lambda s: "stopped" in project_row(s) and "projects 0/1 running" in s,
        "the project stopped on screen",
    )
    assert fleet.project()["desired"] == "stopped"
    assert fleet.project()["status"] == "stopped"

    # s starts it again
    tmux.send("s")
    tmux.wait(
        lambda s: "running" in project_row(s) and "projects 1/1 running" in s,
        "the project running again on screen",
    )
    assert fleet.project()["desired"] == "running"

    # / opens the filter; a text nothing matches empties both tables; Esc clears it
    tmux.send("/")
    tmux.wait(lambda s: "filter by name" in (filter_box(s) or ""), "the empty filter box")
    tmux.send("nothing-is-called-this", literal=True)
    tmux.wait(
        lambda s: (
            (filter_box(s) or "").startswith("nothing-is-called-this")
            and not project_row(s)
            and not table_row(s, "pi-1")
        ),
        "the filter to hide the node and the project",
    )
    tmux.send("Escape")
    tmux.wait(
        lambda s: filter_box(s) is None and project_row(s) and "filter:" not in s,
        "the cleared filter",
    )

    # the node's name as the filter, kept with Enter: the rows stay, the header names it
    tmux.send("/")
    tmux.wait(lambda s: "filter by name" in (filter_box(s) or ""), "the empty filter box")
    for char in "pi-1":
        tmux.send(char, literal=True)
    tmux.wait(lambda s: (filter_box(s) or "").startswith("pi-1"), "the typed filter")
    tmux.send("Enter")
    tmux.wait(lambda s: filter_box(s) is None and project_row(s), "the kept filter")
    tmux.wait(lambda s: "filter: pi-1" in s.splitlines()[0], "the filter in the header")
    # The terminal grows and the TUI redraws to its new width.
    tmux("resize-window", "-t", tmux.session, "-x", "140", "-y", str(HEIGHT))
    filtered = tmux.wait(
        lambda s: (
            "filter: pi-1" in s.splitlines()[0]
            and len(s.splitlines()[1].rstrip()) == 140
            and project_row(s)
        ),
        "the filter in the header of the wider screen, the project on pi-1 passing it",
    )
    print(f"the filtered screen at 140 columns:\n{filtered}")

    # q quits: the process ends with status 0 and gives the terminal back as it was
    assert tmux.modes() == {"alternate": "1", "mouse": "1", "cursor": "0"}
    tmux.send("q")
    ended = tmux.wait(lambda s: "TUI-EXIT=" in s, "the tui to exit")
    assert ended.strip() == "TUI-EXIT=0", ended
    assert tmux.modes() == {"alternate": "0", "mouse": "0", "cursor": "1"}


def test_tui_at_80x24_shows_the_main_keys_and_y_confirms_a_drain(tmux: Tmux, fleet: Fleet) -> None:
    tmux.start(TUI, tui_environment(fleet.url, fleet.token, fleet.tmp), width=80, height=24)
    main = tmux.wait(
        lambda s: (
            "alive" in table_row(s, "pi-1")
            and "running" in project_row(s)
            and "Quit" in s.splitlines()[-1]
            and "D Drain" in s.splitlines()[-1]
        ),
        "the main screen with pi-1, the project running and the footer",
    )
    print(f"the main screen at 80x24:\n{main}")
    footer = main.splitlines()[-1]
    # The keys that matter, whole, most useful first; the rest are under ?.
    assert footer.startswith("q Quit ? Help / Filter"), footer
    assert len(footer.rstrip()) <= 80, footer

    # D on the selected project drains its node, after asking; y says yes
    tmux.send("D")
    tmux.wait(lambda s: "Drain pi-1?" in s and "y yes · n no" in s, "the drain dialog")
    tmux.send("y")
    tmux.wait(
        lambda s: "Drain pi-1?" not in s and "drained" in table_row(s, "pi-1"),
        "pi-1 drained on screen",
    )
    assert call(fleet.url, fleet.token, lambda c: c.nodes())["pi-1"]["drained"] is True

    tmux.send("q")
    ended = tmux.wait(lambda s: "TUI-EXIT=" in s, "the tui to exit")
    assert ended.strip() == "TUI-EXIT=0", ended


def test_tui_with_a_refused_token_says_so_and_quits(tmux: Tmux, tmp_path: Path) -> None:
    with manager_process(tmp_path / "manager", password=PASSWORD) as manager:
        tmux.start(TUI, tui_environment(manager.start(), "not-the-token", tmp_path))
        # The reason comes first in the header: a narrow terminal cuts the URL, not the reason.
        tmux.wait(lambda s: "token refused" in s.splitlines()[0], "the refusal in the header")
        tmux.send("q")
        ended = tmux.wait(lambda s: "TUI-EXIT=" in s, "the tui to exit")
        assert ended.strip() == "TUI-EXIT=0", ended

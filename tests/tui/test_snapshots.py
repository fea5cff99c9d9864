"""Screenshots of the TUI, compared with the SVG baselines in the top-level `snapshots/` folder.

Each test runs `SyncopateApp` headless with `live=False`, a frozen clock and a fixed fleet fed
through `app.apply` the way the /events feed would, so every screen is the same on every run.
After a deliberate change to the screens, look at the new pictures and accept them with
`python -m pytest tests/tui/test_snapshots.py --snapshot-update`; a failing run writes the
plugin's side-by-side report to `snapshot_report.html`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from datetime import UTC, datetime
from typing import Any, cast

from textual.pilot import Pilot

from syncopate.client import ManagerClient
from syncopate.tui.app import SyncopateApp

URL = "https://manager.example:8443"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SnapCompare = Callable[..., bool]


def frozen() -> datetime:
    return NOW


def project(name: str, fields: dict[str, Any]) -> dict[str, Any]:
    """A project as the manager's `project_info` gives it; `fields` override the defaults."""
    info: dict[str, Any] = {
        "project-name": name,
        "project-url": f"https://git.example.org/home/{name}.git",
        "status": "running",
        "disk-usage": 0.0,
        "ram-usage": 0.0,
        "persistent-variables": {},
        "initial_variables": {},
        "node": None,
        "moving-to": None,
        "desired": "running",
        "epoch": 1,
        "restart": "always",
        "commit": None,
        "pid": None,
        "restarts": 0,
        "exit-code": None,
        "started-at": None,
        "updated-at": "2026-11-22T11:59:50Z",
        "created-at": "2026-11-01T09:30:00Z",
        "reason": None,
        "command": None,
        "ref": None,
        "ram": 0.0,
        "disk": 0.0,
        "exclusive": False,
        "log-tail": [],
    }
    assert set(fields) <= set(info), set(fields) - set(info)
    info.update(fields)
    return info


PROJECTS: dict[str, dict[str, Any]] = {
    # The cast: mypy infers `object` for the differently shaped literals below.
    name: project(name, cast(dict[str, Any], fields))
    for name, fields in {
        "air-quality": {
            "node": "pi-2",
            "commit": "3f9c2a1e7b5d40c2a9e1f0b6c8d7e6f5a4b3c2d1",
            "pid": 4121,
            "started-at": "2026-11-22T09:12:00Z",
            "ram-usage": 182.5,
            "disk-usage": 1210.0,
            "ram": 256.0,
            "disk": 2048.0,
            "persistent-variables": {"samples": 53120, "last_pm25": 7.4},
            "initial_variables": {"samples": 0},
            "log-tail": [
                "11:59:30 pm2.5=7.4 pm10=11.0 co2=612",
                "11:59:40 pm2.5=7.3 pm10=10.8 co2=615",
                "11:59:50 pm2.5=7.4 pm10=10.9 co2=611",
            ],
        },
        "backup-sync": {
            "node": "pi-2",
            "status": "stopped",
            "desired": "stopped",
            "commit": "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678",
            "exit-code": 0,
            "disk-usage": 96.0,
            "persistent-variables": {"last_run": "2026-11-21"},
        },
        "door-sensor": {
            "node": "pi-2",
            "status": "failed",
            "reason": "git clone failed: repository "
            "'https://git.example.org/home/door-sensor.git/' not found",
        },
        "grafana-agent": {
            "node": "pi-1",
            "moving-to": "pi-2",
            "commit": "77e1d0c95a3b2f6e4d8c1a0b9f8e7d6c5b4a3f2e",
            "pid": 877,
            "started-at": "2026-11-20T08:00:00Z",
            "ram-usage": 64.0,
            "disk-usage": 310.0,
        },
        "led-matrix": {
            "node": "pi-1",
            "desired": "stopped",
            "commit": "0c0ffee1234567890abcdef1234567890abcdef0",
            "pid": 912,
            "started-at": "2026-11-22T11:58:00Z",
            "ram-usage": 12.0,
            "disk-usage": 4.5,
        },
        "ml-trainer": {
            "status": "unschedulable",
            "ram": 8192.0,
            "reason": "no live node has 8192 MB RAM (most free: 3412 MB on pi-2)",
            "persistent-variables": {"epoch": 12, "best_loss": 0.0831},
        },
        "weather-logger": {
            "node": "pi-2",
            "status": "crashed",
            "commit": "5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d",
            "restarts": 4,
            "exit-code": 1,
            "disk-usage": 35.0,
            "persistent-variables": {"readings": 812},
            "log-tail": [
                "Traceback (most recent call last):",
                '  File "logger.py", line 41, in <module>',
                "OSError: [Errno 121] Remote I/O error",
            ],
        },
    }.items()
}


def node(name: str, **fields: Any) -> dict[str, Any]:
    """A node as the manager's `node_info` gives it, its usage summed from PROJECTS."""
    placed = sorted(p for p, info in PROJECTS.items() if info["node"] == name)
    info: dict[str, Any] = {
        "name": name,
        "status": "alive",
        "drained": False,
        "left": False,
        "last-contact": "2026-11-22T11:59:57Z",
        "joined-at": "2026-11-01T09:00:00Z",
        "storage": 29_800.0,
        "ram": 3_906.0,
        "labels": {"room": "lab"},
        "agent-version": "0.1.0",
        "kind": "agent",
        "address": f"{name}.lan",
        "disk-usage": sum(PROJECTS[p]["disk-usage"] for p in placed),
        "ram-usage": sum(PROJECTS[p]["ram-usage"] for p in placed),
        "projects": placed,
        "metrics": {"cpu": 12.0, "load": 0.31, "temperature": 47.2, "uptime": 264_000.0},
    }
    info.update(fields)
    return info


NODES: dict[str, dict[str, Any]] = {
    "pi-1": node("pi-1", drained=True, labels={"room": "hall", "camera": "yes"}),
    "pi-2": node(
        "pi-2",
        ram=7_810.0,
        storage=118_000.0,
        metrics={"cpu": 100.0, "load": 4.02, "temperature": None, "uptime": 3_600.0},
    ),
    "pi-3": node("pi-3", status="dead", **{"last-contact": "2026-11-22T11:52:10Z"}),
}


def command(id: int, node: str, code: str, state: str, **fields: Any) -> dict[str, Any]:
    """A command as the manager's `command_info` gives it."""
    info: dict[str, Any] = {
        "id": id,
        "user": "admin",
        "node": node,
        "state": state,
        "code": code,
        "interpreter": "sh",
        "timeout": 30.0,
        "pickup": 60.0,
        "lite": False,
        "response": None,
        "exit-code": None,
        "duration": None,
        "analysis": None,
        "reason": None,
        "created": "2026-11-22T11:40:00Z",
        "collected": None,
        "responded": None,
        "analyzed": None,
        "ended": None,
        "history": [{"state": "requested", "at": "2026-11-22T11:40:00Z", "by": "admin"}],
    }
    info.update(fields)
    return info


COMMANDS: dict[str, dict[str, Any]] = {
    "7": command(
        7,
        "pi-2",
        "uptime",
        "responded",
        response=" 11:40:02 up 21 days,  2:11,  0 users,  load average: 0.31, 0.22, 0.19\n",
        **{"exit-code": 0, "duration": 0.04, "collected": "2026-11-22T11:40:01Z"},
    ),
    "8": command(8, "pi-3", "vcgencmd measure_temp", "requested"),
}

SNAPSHOT = {"type": "snapshot", "projects": PROJECTS, "nodes": NODES, "commands": COMMANDS}
LOG_LINES = [f"pm2.5=7.{(m + s) % 10} pm10=11.0 co2=6{m}" for m in range(50, 60) for s in (0, 30)]
# When each line was produced, as the manager answers (UTC; the view shows the local zone: the
# tests run in UTC, tests/tui/conftest.py).
LOG_TIMES = [f"2026-11-22T11:{m:02d}:{s:02d}Z" for m in range(50, 60) for s in (0, 30)]


class ScriptedClient(ManagerClient):
    """The manager's client for the logs screen: a fixed answer, then a feed that stays quiet.

    `events` yields its snapshot and then waits forever, like a live /events feed with nothing
    new to say; `logs` answers with LOG_LINES. Nothing touches the network.
    """

    async def events(self, logs: Any = ()) -> AsyncGenerator[dict[str, Any], None]:
        yield SNAPSHOT
        await asyncio.Event().wait()

    async def logs(self, project: str, lines: int = 200) -> dict[str, Any]:
        return {
            "project": project,
            "node": PROJECTS[project]["node"],
            "seq": 4180,
            "lines": LOG_LINES,
            "times": LOG_TIMES,
        }


def fleet_app() -> SyncopateApp:
    return SyncopateApp(URL, "token", live=False, clock=frozen)


async def load(pilot: Pilot[None]) -> None:
    """What the /events worker does on its first message: mark the feed up, apply the snapshot."""
    app = pilot.app
    assert isinstance(app, SyncopateApp)
    app.set_connection(True, "connected")
    app.apply(SNAPSHOT)
    await pilot.pause()


def test_main_screen(snap_compare: SnapCompare) -> None:
    """The main screen at 120×40. The header bar: connected, nodes 2 alive 1 dead, projects 3
    running 2 failing of 7. The nodes table: pi-1 alive and drained, pi-2 alive, pi-3 dead. The
    projects table, one row per status: running, stopped, failed, running while moving
    pi-1→pi-2, running while stopping, unschedulable, crashed; its first row (air-quality)
    highlighted, and air-quality's fields in the detail pane (the rest scrolls)."""
    assert snap_compare(fleet_app(), terminal_size=(120, 40), run_before=load)


def test_main_screen_small(snap_compare: SnapCompare) -> None:
    """The same main screen in an 80×24 terminal: the tables scroll sideways. The footer shows
    the keys that matter first, whole: q Quit, ? Help, / Filter, ⏎ Detail, a Add, s Start,
    x Stop, r Restart, l Logs, D Drain; the rest are under `?`."""
    assert snap_compare(fleet_app(), terminal_size=(80, 24), run_before=load)


def test_main_screen_wide(snap_compare: SnapCompare) -> None:
    """The same main screen in a 200×50 terminal: the footer shows every key, in the same
    order, ending with u Undrain and F Forget."""
    assert snap_compare(fleet_app(), terminal_size=(200, 50), run_before=load)


def test_add_form(snap_compare: SnapCompare) -> None:
    """`a`: the empty add-a-project form over the main screen, the Name field focused."""
    assert snap_compare(fleet_app(), press=["a"], terminal_size=(120, 40), run_before=load)


def test_add_form_errors(snap_compare: SnapCompare) -> None:
    """The add form after Enter with the name `../x` and the URL `ext::sh -c x`: each field's
    error beside it, nothing sent."""
    keys = ["a", *"../x", "tab", *"ext::sh -c x", "enter"]
    assert snap_compare(fleet_app(), press=keys, terminal_size=(120, 40), run_before=load)


def test_remove_confirm(snap_compare: SnapCompare) -> None:
    """`d` on the highlighted project (air-quality): the remove dialog naming its URL and node,
    "y yes · n no" left of its buttons, Cancel focused."""
    assert snap_compare(fleet_app(), press=["d"], terminal_size=(120, 40), run_before=load)


def test_help(snap_compare: SnapCompare) -> None:
    """`?`: every key and what it does."""
    assert snap_compare(fleet_app(), press=["?"], terminal_size=(120, 40), run_before=load)


def test_help_small(snap_compare: SnapCompare) -> None:
    """`?` in an 80×24 terminal: every key, the whole list on the screen."""
    assert snap_compare(fleet_app(), press=["?"], terminal_size=(80, 24), run_before=load)


def test_logs(snap_compare: SnapCompare) -> None:
    """`l` on air-quality: its kept output (20 lines from a scripted client) and the state line
    "following (on pi-2)"."""
    app = fleet_app()
    app.client = ScriptedClient(URL, "token")
    assert snap_compare(app, press=["l"], terminal_size=(120, 40), run_before=load)


def test_filter(snap_compare: SnapCompare) -> None:
    """`/`, `pi-2`, Enter: the filter box closed again and both tables narrowed to what
    mentions pi-2: the node pi-2, the projects placed there and the one moving there."""
    keys = ["slash", *"pi-2", "enter"]
    assert snap_compare(fleet_app(), press=keys, terminal_size=(120, 40), run_before=load)


def test_add_form_small(snap_compare: SnapCompare) -> None:
    """`a` in an 80×24 terminal: the add form fits 80 columns and scrolls; its top shows, the
    Name field focused, Run on and Health cmd under Command."""
    assert snap_compare(fleet_app(), press=["a"], terminal_size=(80, 24), run_before=load)


# air-quality as the edit form finds it: placed, health-checked, its memory capped (DESIGN
# section 12). Only the edit form's tests use it: the main screen's detail pane stays as it is.
PLACED = {
    **SNAPSHOT,
    "projects": {
        **PROJECTS,
        "air-quality": {
            **PROJECTS["air-quality"],
            "on": ["room=lab", "camera"],
            "every-node": False,
            "stay": True,
            "health": {
                "cmd": "curl -fs localhost:8080/ok",
                "http": None,
                "interval": 10.0,
                "timeout": 5.0,
                "retries": 3,
            },
            "grace": 30.0,
            "max-ram": 384.0,
        },
    },
}


async def load_placed(pilot: Pilot[None]) -> None:
    """`load`, with air-quality's section 12 fields set (PLACED)."""
    app = pilot.app
    assert isinstance(app, SyncopateApp)
    app.set_connection(True, "connected")
    app.apply(PLACED)
    await pilot.pause()


def test_edit_form_small(snap_compare: SnapCompare) -> None:
    """`e` on air-quality in an 80×24 terminal: the edit form prefilled with its URL, Run on
    `room=lab camera`, its health command, RAM 256, disk 2048, max RAM 384, the Command field
    focused; it fits 80 columns, and what does not fit 24 lines scrolls (the next test)."""
    assert snap_compare(fleet_app(), press=["e"], terminal_size=(80, 24), run_before=load_placed)


def test_edit_form_small_scrolled(snap_compare: SnapCompare) -> None:
    """The same form after Tab from Command to Save: scrolled to its end, Max RAM 384, grace
    30, the Secret field empty, the checkboxes (exclusive off, stay on), Cancel and Save
    (focused)."""
    keys = ["e", *["tab"] * 12]
    assert snap_compare(fleet_app(), press=keys, terminal_size=(80, 24), run_before=load_placed)

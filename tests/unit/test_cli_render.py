"""The CLI's tables and formats, from manager answers and a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from rich.console import Console

from syncopate.command_render import command_detail, commands_table
from syncopate.render import (
    ago,
    as_list,
    first_line,
    nodes_table,
    project_detail,
    projects_table,
    size,
)

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)


def text_of(renderable: object, width: int = 160) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


@pytest.mark.parametrize(
    ("stamp", "shown"),
    [
        ("2026-11-22T11:59:48Z", "12s ago"),
        ("2026-11-22T11:57:00Z", "3m ago"),
        ("2026-11-22T07:00:00Z", "5h ago"),
        ("2026-11-20T12:00:00Z", "2d ago"),
        ("2026-11-22T12:00:05Z", "0s ago"),  # a clock a little ahead of ours
        (None, "-"),
        ("yesterday", "-"),
    ],
)
def test_ages(stamp: str | None, shown: str) -> None:
    assert ago(stamp, NOW) == shown


@pytest.mark.parametrize(
    ("megabytes", "shown"),
    [(0, "0 MB"), (0.4, "0.4 MB"), (12.3, "12 MB"), (1536, "1.5 GB"), (2 * 1024**2, "2.0 TB")],
)
def test_sizes(megabytes: float, shown: str) -> None:
    assert size(megabytes) == shown
    assert size(None) == size("12") == size(True) == "-"


PROJECTS: dict[str, dict[str, Any]] = {
    "counter": {
        "project-name": "counter",
        "status": "running",
        "node": "pi-1",
        "moving-to": None,
        "desired": "running",
        "started-at": "2026-11-22T11:57:00Z",
        "ram-usage": 12.0,
        "disk-usage": 1.5,
        "restarts": 2,
        "commit": "8c5e423ed821859497f16bd1f58581f53eb2cd45",
        "reason": None,
        "persistent-variables": {"count": 42},
        "log-tail": ["count 41", "count 42"],
    },
    "big": {
        "project-name": "big",
        "status": "unschedulable",
        "node": None,
        "moving-to": None,
        "desired": "running",
        "reason": "no live node has 2000 MB RAM (most free: 900 MB)",
        "persistent-variables": {},
    },
}


def test_projects_table_shows_what_a_person_checks() -> None:
    lines = text_of(projects_table(PROJECTS, NOW)).splitlines()
    assert lines[0].split() == [
        "NAME", "STATUS", "NODE", "UP", "RAM", "DISK", "RESTARTS", "COMMIT", "REASON"
    ]  # fmt: skip
    assert lines[1].split()[:2] == ["big", "unschedulable"]  # sorted by name
    assert "no live node has 2000 MB RAM" in lines[1]
    assert lines[2].split() == ["counter", "running", "pi-1", "3m", "12", "MB", "2", "MB", "2",
                                "8c5e423ed8"]  # fmt: skip


def test_a_moving_or_stopping_project_says_so() -> None:
    moving = {**PROJECTS["counter"], "moving-to": "pi-2", "desired": "stopped"}
    row = text_of(projects_table({"counter": moving}, NOW)).splitlines()[1]
    assert "pi-1 → pi-2" in row and "running (stopping)" in row


def test_status_colours() -> None:
    console = Console(width=160, record=True, color_system="truecolor", force_terminal=True)
    console.print(projects_table(PROJECTS, NOW))
    styled = console.export_text(styles=True)
    assert "\x1b[1;32mrunning" in styled  # bold green
    assert "\x1b[33munschedulable" in styled  # yellow


def test_nodes_table() -> None:
    nodes: dict[str, dict[str, Any]] = {
        "pi-1": {
            "status": "alive",
            "drained": True,
            "left": False,
            "last-contact": "2026-11-22T11:59:58Z",
            "ram": 3800.0,
            "storage": 29000.0,
            "ram-usage": 120.0,
            "disk-usage": 30.0,
            "labels": {"room": "lab", "arch": "arm64"},
            "projects": ["a", "b"],
            "metrics": {"cpu": 42.4, "load": 0.5, "temperature": None, "uptime": 60.0},
        },
        "pi-2": {"status": "dead", "projects": [], "labels": {}, "metrics": {"cpu": 9.0}},
    }
    lines = text_of(nodes_table(nodes, NOW)).splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "PROJECTS", "RAM", "DISK", "CPU", "LAST",
                                "CONTACT", "LABELS"]  # fmt: skip
    assert "alive (drained)" in lines[1] and "120 MB / 3.7 GB" in lines[1]
    assert "2s ago" in lines[1] and "arch=arm64,room=lab" in lines[1]
    assert "30 MB / 28.3 GB  42%  2s ago" in lines[1]
    assert lines[2].split()[:3] == ["pi-2", "dead", "0"]
    assert "9%" not in lines[2]  # a dead node's last figure is not shown as current


def test_project_detail_has_fields_variables_and_output() -> None:
    text = text_of(project_detail(PROJECTS["counter"], NOW))
    assert "status       running" in text
    assert '"count": 42' in text
    assert "last 2 lines of output" in text and "count 42" in text
    assert "started      3m ago" in text


def test_json_lists_put_name_first_and_keep_every_field() -> None:
    listed = as_list(PROJECTS)
    assert [item["name"] for item in listed] == ["big", "counter"]
    assert next(iter(listed[1])) == "name"
    assert {k: v for k, v in listed[1].items() if k != "name"} == PROJECTS["counter"]


COMMAND = {
    "id": 7,
    "user": "alice",
    "node": "pi-1",
    "state": "analyzed",
    "code": "import os\nprint(os.uname())\n",
    "interpreter": "python",
    "timeout": 30.0,
    "pickup": 60.0,
    "lite": False,
    "response": "posix.uname_result(...)\n",
    "exit-code": 0,
    "duration": 0.0412,
    "analysis": "a Linux box",
    "reason": None,
    "created": "2026-11-22T11:59:00.100Z",
    "collected": "2026-11-22T11:59:00.102Z",
    "responded": "2026-11-22T11:59:00.150Z",
    "analyzed": "2026-11-22T11:59:30.000Z",
    "ended": "2026-11-22T11:59:30.000Z",
    "history": [
        {"state": "requested", "at": "2026-11-22T11:59:00.100Z", "by": "alice"},
        {"state": "collected", "at": "2026-11-22T11:59:00.102Z", "by": "pi-1"},
        {"state": "responded", "at": "2026-11-22T11:59:00.150Z", "by": "pi-1"},
        {"state": "analyzed", "at": "2026-11-22T11:59:30.000Z", "by": "alice"},
    ],
}


def test_commands_table_fits_80_columns_newest_first() -> None:
    older = {**COMMAND, "id": 6, "state": "timed-out", "exit-code": None, "duration": None}
    text = text_of(commands_table({"7": COMMAND, "6": older}, NOW), width=80)
    lines = text.splitlines()
    assert lines[0].split() == ["ID", "NODE", "STATE", "EXIT", "USER", "SENT", "TOOK", "CODE"]
    assert lines[1].split()[:7] == ["7", "pi-1", "analyzed", "0", "alice", "59s", "ago"]
    assert "0.04s" in lines[1] and "import os …" in lines[1]
    assert lines[2].split()[:4] == ["6", "pi-1", "timed-out", "-"]
    assert all(len(line) <= 80 for line in lines)


def test_first_line_of_code() -> None:
    assert first_line("\n\n  x = 1\n", 20) == "x = 1"
    assert first_line("a\nb", 20) == "a …"
    assert first_line("y" * 50, 10) == "yyyyyyyyy…"
    assert first_line("", 10) == "-"


def test_command_detail_shows_every_step_with_who_and_when() -> None:
    text = text_of(command_detail(COMMAND, NOW))
    for step, by in (("requested", "alice"), ("collected", "pi-1"), ("analyzed", "alice")):
        assert any(step in line and by in line for line in text.splitlines()), step
    for shown in ("30s (collect within 60s)", "0.041s", "print(os.uname())", "a Linux box"):
        assert shown in text

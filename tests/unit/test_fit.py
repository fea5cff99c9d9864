"""Tables that fit their width (fit.py) and the words a dropped feed is told in (feed.py)."""

from __future__ import annotations

import errno
import socket
from typing import Any

import pytest

from syncopate.errors import ConnectionFailed, Unavailable, Unreachable
from syncopate.feed import FeedClosed, FeedDropped, FeedRevoked, connection_reason, drop_text
from syncopate.fit import Column, FitTable
from syncopate.render import nodes_table, projects_table
from tests.unit.test_cli_render import NOW, PROJECTS, text_of

LONG_REASON = (
    "no live node has the labels it needs (--on gpu=yes): 3 nodes checked, none has gpu=yes; "
    "label one with `syncopate node label NAME gpu=yes`"
)


def lines_at(renderable: object, width: int) -> list[str]:
    return text_of(renderable, width).splitlines()


@pytest.mark.parametrize("width", [60, 80, 100, 132, 200])
def test_projects_fit_a_line_a_row_with_names_whole(width: int) -> None:
    projects: dict[str, dict[str, Any]] = {
        **PROJECTS,
        "weather-station-logger-in-the-greenhouse": {
            **PROJECTS["big"],
            "reason": LONG_REASON + "\nand a second line",
        },
    }
    lines = lines_at(projects_table(projects, NOW), width)
    assert len(lines) == 1 + len(projects)
    assert all(len(line) <= width for line in lines), "\n".join(lines)
    names = [line.split()[0] for line in lines[1:]]
    assert names == sorted(projects)  # whole, never `weather-st…`
    if width >= 80:  # at 60 the 40-character name leaves room for the status alone
        assert lines[0].split()[:3] == ["NAME", "STATUS", "NODE"]


def test_at_80_columns_the_reason_is_one_line_cut_with_an_ellipsis() -> None:
    projects = {**PROJECTS, "big": {**PROJECTS["big"], "reason": LONG_REASON}}
    lines = lines_at(projects_table(projects, NOW), 80)
    assert lines[0].split() == [
        "NAME", "STATUS", "NODE", "UP", "RAM", "DISK", "RESTARTS", "REASON"
    ]  # fmt: skip
    assert "no live node has the l" in lines[1] and lines[1].rstrip().endswith("…")
    assert "8c5e423ed8" not in lines[2]  # COMMIT went first


@pytest.mark.parametrize("width", [60, 80, 100, 132, 200])
def test_the_lines_drawn_by_hand_are_what_a_rich_table_draws(width: int) -> None:
    """FitTable pads its cells itself (rich's Table cost a list 40 ms): the same text as the
    rich Table of the same widths, names cut, a reason with an ellipsis, numbers right."""
    projects: dict[str, dict[str, Any]] = {
        **PROJECTS,
        "a-project-with-a-name-long-enough-to-be-cut-at-eighty": {
            **PROJECTS["big"],
            "reason": LONG_REASON,
        },
    }
    table = projects_table(projects, NOW)
    by_hand = [line.rstrip() for line in lines_at(table, width)]
    by_rich = [line.rstrip() for line in lines_at(table.table(width), width)]
    assert by_hand == by_rich


@pytest.mark.parametrize("width", [80, 200])
def test_the_last_line_ends_with_a_newline_as_rich_tables_do(width: int) -> None:
    """Without it a shell's prompt lands on the table's last row."""
    table = projects_table(PROJECTS, NOW)
    assert text_of(table, width).endswith("\n")
    assert text_of(table.table(width), width).endswith("\n")
    assert not text_of(table, width).endswith("\n\n")


def test_a_cell_is_plain_text_not_markup() -> None:
    table = FitTable([Column("NAME"), Column("REASON", flexible=True)], [["x", "[bold]y[/]"]])
    assert lines_at(table, 80)[1].split() == ["x", "[bold]y[/]"]


def test_too_narrow_for_the_kept_columns_rich_squeezes_them_rather_than_cut_the_last() -> None:
    table = projects_table(PROJECTS, NOW)
    lines = lines_at(table, 20)
    assert all(len(line) <= 20 for line in lines), lines
    assert lines[0].split() == ["NAME", "STATUS"] or "STAT" in lines[0], lines


def test_the_least_kept_column_goes_first_and_the_kept_ones_never() -> None:
    columns = [
        Column("NAME"),
        Column("A", keep=3),
        Column("B", keep=1),
        Column("C", keep=2),
        Column("WHY", keep=5, flexible=True, min_width=6),
    ]
    table = FitTable(columns, [["x" * 20, "a" * 10, "b" * 10, "c" * 10, "y" * 40]])
    assert [columns[i].header for i in table.kept(200)] == ["NAME", "A", "B", "C", "WHY"]
    assert [columns[i].header for i in table.kept(60)] == ["NAME", "A", "C", "WHY"]
    assert [columns[i].header for i in table.kept(50)] == ["NAME", "A", "WHY"]
    assert [columns[i].header for i in table.kept(38)] == ["NAME", "WHY"]
    assert [columns[i].header for i in table.kept(27)] == ["NAME"]
    assert [columns[i].header for i in table.kept(10)] == ["NAME"]  # always there, whole
    line = lines_at(table, 50)[1]
    assert line.startswith("x" * 20 + "  " + "a" * 10) and line.endswith("…")


VERY_LONG = "the-weather-station-logger-in-the-greenhouse-behind-the-barn"  # 60 characters


def test_a_very_long_project_name_is_cut_to_keep_node_status_and_reason() -> None:
    """A new user's 60-character name at 80 columns left NAME and STATUS alone (issue 16)."""
    projects = {
        **PROJECTS,
        VERY_LONG: {**PROJECTS["big"], "reason": "no live node has enough RAM (needs 900 MB)"},
    }
    lines = lines_at(projects_table(projects, NOW), 80)
    assert len(lines) == 1 + len(projects) and all(len(line) <= 80 for line in lines), lines
    assert lines[0].split()[:3] == ["NAME", "STATUS", "NODE"] and "REASON" in lines[0]
    cut = next(line for line in lines if line.startswith(VERY_LONG[:40]))
    assert VERY_LONG not in cut and "…" in cut.split()[0]
    assert [line.split()[0] for line in lines[1:] if line is not cut] == sorted(PROJECTS)


def test_a_cut_column_gives_way_only_to_what_ranks_at_its_cut_before() -> None:
    columns = [
        Column("NAME", min_width=10, cut_before=5),
        Column("LOW", keep=1),
        Column("HIGH", keep=5),
    ]
    table = FitTable(columns, [["n" * 30, "l" * 10, "h" * 10]])
    assert table.widths(200) == {0: 30, 1: 10, 2: 10}
    assert table.widths(42) == {0: 30, 2: 10}  # LOW goes before NAME is cut
    assert table.widths(30) == {0: 18, 2: 10}  # NAME is cut to keep HIGH
    assert lines_at(table, 30)[1].startswith("n" * 17 + "…  " + "h" * 10)
    assert table.widths(15) == {0: 15}  # HIGH would leave NAME below its min_width: it goes
    assert table.widths(5) == {0: 10}  # never below its min_width


def test_a_very_long_node_name_is_cut_to_keep_its_projects() -> None:
    nodes: dict[str, dict[str, Any]] = {
        VERY_LONG: {"status": "alive", "projects": ["a"], "ram": 3800.0, "ram-usage": 120.0}
    }
    lines = lines_at(nodes_table(nodes, NOW), 80)
    assert all(len(line) <= 80 for line in lines), lines
    assert lines[0].split()[:3] == ["NAME", "STATUS", "PROJECTS"], lines
    assert lines[1].split()[0].endswith("…")


def test_nodes_keep_long_names_whole_at_80_columns() -> None:
    nodes: dict[str, dict[str, Any]] = {
        "raspberrypi-kitchen-cupboard-01": {
            "status": "alive",
            "drained": True,
            "ram": 3800.0,
            "storage": 29000.0,
            "ram-usage": 120.0,
            "disk-usage": 30.0,
            "labels": {"room": "kitchen", "arch": "arm64", "gpu": "no", "camera": "yes"},
            "projects": ["a"],
            "metrics": {"cpu": 42.0},
            "last-contact": "2026-11-22T11:59:58Z",
        },
        "pi-2": {"status": "dead", "kind": "lite", "projects": [], "labels": {}},
    }
    lines = lines_at(nodes_table(nodes, NOW), 80)
    assert len(lines) == 3 and all(len(line) <= 80 for line in lines)
    assert lines[2].startswith("raspberrypi-kitchen-cupboard-01  alive (drained)")
    assert lines[0].split()[:3] == ["NAME", "STATUS", "PROJECTS"]


@pytest.mark.parametrize(
    ("error", "why"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed ('127.0.0.1', 9)"),
         "connection refused"),
        (TimeoutError(), "timed out"),
        (socket.gaierror(-2, "Name or service not known"), "unknown host"),
        (OSError(errno.EHOSTUNREACH, "whatever the library says"), "no route to host"),
        (OSError("Server disconnected"), "the connection closed"),
    ],
)  # fmt: skip
def test_a_connection_failure_is_told_in_a_few_words(error: BaseException, why: str) -> None:
    assert connection_reason(error) == why


def test_aiohttp_connector_errors_are_told_by_their_os_error() -> None:
    import aiohttp

    key: Any = type("Key", (), {"ssl": True, "host": "127.0.0.1", "port": 9})()
    wrapped = aiohttp.ClientConnectorError(key, ConnectionRefusedError(errno.ECONNREFUSED, "x"))
    assert "Cannot connect to host" in str(wrapped)  # what was shown before
    assert connection_reason(wrapped) == "connection refused"


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (Unreachable("cannot reach the manager at http://m:8470 (connection refused)"),
         "lost the manager (connection refused); trying again in 2 s"),
        (FeedClosed("the event feed from http://m:8470 closed"),
         "lost the manager (it closed the connection); trying again in 2 s"),
        (FeedRevoked("http://m:8470 closed the event feed: the controller token was revoked"),
         "lost the manager (it closed the feed: the controller token was revoked); "
         "trying again in 2 s"),
        (Unavailable("the manager is shutting down"),
         "lost the manager (it answered 503: the manager is shutting down); trying again in 2 s"),
        (ConnectionFailed("the certificate of http://m:8470 does not match"),
         "lost the manager (the certificate of http://m:8470 does not match); trying again in 2 s"),
    ],
)  # fmt: skip
def test_a_dropped_feed_is_one_sentence(error: ConnectionFailed, said: str) -> None:
    assert drop_text(FeedDropped(error, 2.0)) == said

"""The TUI's pure parts: the fleet model fed /events messages, and the rows it shows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from syncopate.tui.model import FleetModel
from syncopate.tui.rows import NODE_COLUMNS, PROJECT_COLUMNS, node_row, project_row, short_size

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)


def snapshot() -> dict[str, object]:
    return {
        "type": "snapshot",
        "projects": {
            "alpha": {"status": "running", "node": "pi-1"},
            "beta": {"status": "failed", "node": "pi-2", "reason": "clone failed"},
            "gamma": {"status": "unschedulable", "node": None},
        },
        "nodes": {"pi-1": {"status": "alive"}, "pi-2": {"status": "dead"}},
        "commands": {"1": {"id": 1, "node": "pi-1"}, "2": {"id": 2, "node": "pi-1"}},
    }


def test_a_snapshot_replaces_everything() -> None:
    model = FleetModel(projects={"old": {}})
    delta = model.apply(snapshot())
    assert delta.full and model.loaded
    assert set(model.projects) == {"alpha", "beta", "gamma"}
    assert model.counts() == {
        "nodes": 2,
        "alive": 1,
        "dead": 1,
        "projects": 3,
        "running": 1,
        "failed": 2,
    }


def test_changes_say_what_was_changed_added_and_removed() -> None:
    model = FleetModel()
    model.apply(snapshot())
    delta = model.apply(
        {
            "type": "changes",
            "projects": {"alpha": {"status": "crashed"}, "beta": None, "delta": {"status": "x"}},
            "nodes": {},
            "commands": {"3": {"id": 3, "node": "pi-2"}},
        }
    )
    assert not delta.full
    assert delta.changed["projects"] == {"alpha"}
    assert delta.removed["projects"] == {"beta"}
    assert delta.added["projects"] == {"delta"} and delta.added["commands"] == {"3"}
    assert not delta.touches("nodes") and delta.touches("projects")
    assert model.projects["alpha"] == {"status": "crashed"} and "beta" not in model.projects


def test_removing_what_is_not_there_is_no_change() -> None:
    model = FleetModel()
    model.apply(snapshot())
    delta = model.apply({"type": "changes", "projects": {"ghost": None}})
    assert not delta.touches("projects")


def test_other_messages_change_nothing() -> None:
    model = FleetModel()
    model.apply(snapshot())
    assert not model.apply({"type": "logs", "project": "alpha", "seq": 0, "lines": ["x"]}).touches(
        "projects"
    )


def test_the_filter_matches_name_node_and_status() -> None:
    model = FleetModel()
    model.apply(snapshot())
    model.filter = "PI-2"
    assert model.visible("projects") == ["beta"] and model.visible("nodes") == ["pi-2"]
    model.filter = "unsched"
    assert model.visible("projects") == ["gamma"] and model.visible("nodes") == []
    model.filter = " "
    assert model.visible("projects") == ["alpha", "beta", "gamma"]


def test_a_node_stays_when_the_filter_matches_one_of_its_projects() -> None:
    model = FleetModel()
    fleet = snapshot()
    fleet["nodes"] = {
        "pi-1": {"status": "alive", "projects": ["alpha", "mon"]},
        "pi-2": {"status": "alive", "projects": ["beta", "mon"]},
    }
    model.apply(fleet)
    model.filter = "alph"
    assert model.visible("projects") == ["alpha"] and model.visible("nodes") == ["pi-1"]
    model.filter = "mon"  # an every-node project: every node it runs on
    assert model.visible("nodes") == ["pi-1", "pi-2"]
    model.filter = "gamma"  # placed nowhere: no node
    assert model.visible("projects") == ["gamma"] and model.visible("nodes") == []


def test_a_nodes_newest_commands_first() -> None:
    model = FleetModel()
    model.apply(snapshot())
    assert [c["id"] for c in model.commands_of("pi-1")] == [2, 1]
    assert model.commands_of("pi-2") == []


def test_rows_fit_their_columns() -> None:
    project = {
        "status": "running",
        "node": "pi-1",
        "moving-to": "pi-2",
        "started-at": "2026-11-22T11:57:00Z",
        "commit": "0123456789abcdef",
        "restarts": 3,
        "ram-usage": 1536.0,
        "disk-usage": 12.0,
        "persistent-variables": {"a": 1, "b": 2},
    }
    cells = [str(c) for c in project_row("a-rather-long-project-name", project, NOW)]
    assert cells[1] == "pi-1→pi-2" and cells[3] == "0123456"
    assert [c.strip() for c in cells[4:]] == ["3m", "3", "1.5G", "12M", "2"]
    for cell, column in zip(cells, PROJECT_COLUMNS, strict=True):
        assert len(cell) <= column.width, (column.key, cell)
    node = {"status": "alive", "drained": True, "last-contact": "2026-11-22T11:59:58Z"}
    node |= {"ram": 4096.0, "ram-usage": 100.0, "storage": 30000.0, "projects": ["x"]}
    shown = [str(c) for c in node_row("pi-1", node, NOW)]
    assert shown[1] == "alive drained" and shown[2] == "2s" and shown[3] == "100M/4.0G"
    assert shown[4] == "-/29G"  # no disk usage reported
    for cell, column in zip(shown, NODE_COLUMNS, strict=True):
        assert len(cell) <= column.width, (column.key, cell)


def test_a_stop_under_way_shows_stopping() -> None:
    info = {"status": "running", "desired": "stopped"}
    assert str(project_row("a", info, NOW)[2]) == "stopping"
    assert str(project_row("a", {**info, "status": "stopped"}, NOW)[2]) == "stopped"


@pytest.mark.parametrize(
    ("megabytes", "shown"),
    [(0, "0"), (0.4, "0"), (5, "5M"), (999, "999M"), (1000, "1.0G"), (1536, "1.5G"),
     (40 * 1024, "40G"), (3 * 1024**2, "3.0T"), (-1, "-"), (None, "-"), (True, "-")],
)  # fmt: skip
def test_short_sizes_fit_five_characters(megabytes: object, shown: str) -> None:
    assert short_size(megabytes) == shown

"""How an every-node project shows: `project list` and `show`, and the TUI's rows under it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from syncopate.render import project_detail, projects_table
from syncopate.tui.model import FleetModel
from syncopate.tui.rows import PROJECT_COLUMNS, project_row
from tests.unit.test_cli_render import text_of

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)


def copy(node: str, status: str, count: int, reason: str | None = None) -> dict[str, Any]:
    return {
        "name": f"mon@{node}",
        "node": node,
        "status": status,
        "reason": reason,
        "desired": "running",
        "commit": "8c5e423ed8a1",
        "persistent-variables": {"count": count},
        "epoch": 1,
        "pid": 10,
        "restarts": 0,
        "started-at": "2026-11-22T11:57:00Z",
        "ram-usage": 12.0,
        "disk-usage": 1.0,
    }


def parent(*copies: dict[str, Any]) -> dict[str, Any]:
    running = sum(1 for c in copies if c["status"] == "running")
    return {
        "project-name": "mon",
        "status": "running" if running == len(copies) else "lost",
        "node": None,
        "desired": "running",
        "every-node": True,
        "persistent-variables": {},
        "copies": {c["node"]: c for c in copies},
        "copies-running": running,
        "copies-total": len(copies),
    }


MON = parent(
    copy("pi-1", "running", 4),
    copy("pi-2", "lost", 9, "node pi-2 left; its copy waits for it (not moved)"),
    copy("pi-3", "running", 1),
)


def test_project_list_shows_how_many_copies_run() -> None:
    row = text_of(projects_table({"mon": MON}, NOW)).splitlines()[1]
    assert row.split()[:5] == ["mon", "2/3", "running", "every", "node"]


def test_project_show_lists_each_copy_on_a_line() -> None:
    text = text_of(project_detail(MON, NOW))
    lines = [line.split() for line in text.splitlines() if line.startswith("pi-")]
    shown = [line[:2] for line in lines]
    assert shown == [["pi-1", "running"], ["pi-2", "lost"], ["pi-3", "running"]]
    assert '{"count": 9}' in text and "(not moved)" in text
    assert "COPY ON" in text


def test_the_tui_shows_copies_as_rows_under_their_project() -> None:
    model = FleetModel()
    others = {"mon-2": {"status": "running", "node": "pi-1"}}
    model.apply({"type": "snapshot", "projects": {"mon": MON, **others}, "nodes": {}})
    assert model.visible("projects") == ["mon", "mon@pi-1", "mon@pi-2", "mon@pi-3", "mon-2"]
    # The header counts the copies, each a project process, not the parent.
    assert model.counts()["projects"] == 4 and model.counts()["running"] == 3
    row = project_row("mon@pi-2", model.projects["mon@pi-2"], NOW)
    assert row[0] == "└@pi-2" and row[1] == "pi-2" and str(row[2]) == "lost"
    assert str(project_row("mon", model.projects["mon"], NOW)[2]) == "2/3 running"
    for name in model.visible("projects"):
        cells = project_row(name, model.projects[name], NOW)
        for column, cell in zip(PROJECT_COLUMNS, cells, strict=True):
            assert len(str(cell)) <= column.width, (name, column.key, cell)
    # The detail of a copy's row is the copy's.
    assert model.projects["mon@pi-2"]["persistent-variables"] == {"count": 9}
    assert model.projects["mon@pi-2"]["project-name"] == "mon@pi-2"


def test_copy_rows_follow_their_projects_changes() -> None:
    model = FleetModel()
    model.apply({"type": "snapshot", "projects": {"mon": MON}, "nodes": {}})
    fewer = parent(copy("pi-1", "running", 5), copy("pi-4", "pending", 0))
    delta = model.apply({"type": "changes", "projects": {"mon": fewer}})
    assert delta.removed["projects"] == {"mon@pi-2", "mon@pi-3"}
    assert delta.added["projects"] == {"mon@pi-4"}
    assert {"mon", "mon@pi-1"} <= delta.changed["projects"]
    delta = model.apply({"type": "changes", "projects": {"mon": None}})
    assert model.projects == {}
    assert delta.removed["projects"] == {"mon", "mon@pi-1", "mon@pi-4"}

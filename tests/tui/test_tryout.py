"""What a new user's tryout of the TUI found, each driven through Textual's pilot: Tab moves
between the two tables only, a sort holds when rows change, a paused log says so on its state
line, a toast shows its whole sentence, the forget dialog counts in words, and a project's
reason shows right under its status."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import Footer, Static
from textual.widgets._toast import Toast

from syncopate.tui.app import SyncopateApp
from syncopate.tui.screens import ConfirmScreen, LogsScreen, drain_question, forget_question
from tests.tui.test_pilot import row_names, text_of, until
from tests.tui.test_snapshots import NODES, URL, ScriptedClient, fleet_app, load


async def focus_row(pilot: Pilot[None], app: SyncopateApp, kind: str, name: str) -> None:
    grid = app.table(kind)
    grid.focus()
    grid.move_cursor(row=grid.get_row_index(name))
    await until(pilot, lambda: app.selected == (kind, name), f"{name} to be selected")


def screen_lines(app: SyncopateApp) -> list[str]:
    """The screen as a person sees it, one string per terminal line (layers drawn over)."""
    width = app.size.width
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    console.print(app.screen._compositor.render_update(full=True))
    return console.export_text().splitlines()


async def test_tab_moves_between_the_two_tables_only() -> None:
    app = fleet_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await load(pilot)
        assert app.focused is app.table("projects")
        seen = []
        for _ in range(4):
            await pilot.press("tab")
            seen.append(app.focused.id if app.focused else None)
        assert seen == ["nodes", "projects", "nodes", "projects"]
        await pilot.press("shift+tab")
        assert app.focused is app.table("nodes")
        # Wherever Tab stops, j moves a highlighted row.
        await pilot.press("j")
        await until(pilot, lambda: app.selected == ("nodes", "pi-2"), "j on the nodes table")


async def test_a_sort_holds_when_the_sorted_values_change() -> None:
    app = fleet_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await load(pilot)
        await focus_row(pilot, app, "nodes", "pi-1")
        await pilot.press("P")  # by projects: pi-3 has 0, pi-1 2, pi-2 4
        await until(pilot, lambda: row_names(app, "nodes") == ["pi-3", "pi-1", "pi-2"], "by P")
        # pi-2 is drained of its projects, which go to pi-1: the order follows the counts.
        moved = NODES["pi-1"]["projects"] + NODES["pi-2"]["projects"]
        changes = {
            "pi-1": {**NODES["pi-1"], "projects": moved},
            "pi-2": {**NODES["pi-2"], "projects": [], "drained": True},
        }
        app.apply({"type": "changes", "nodes": changes})
        await until(pilot, lambda: row_names(app, "nodes") == ["pi-2", "pi-3", "pi-1"], "resort")
        grid = app.table("nodes")
        assert grid.cursor_name() == "pi-1", "the cursor stays on its row"
        assert app.selected == ("nodes", "pi-1")
        # A change to a column not sorted on moves nothing.
        app.apply({"type": "changes", "nodes": {"pi-3": {**NODES["pi-3"], "ram-usage": 5.0}}})
        await pilot.pause()
        assert row_names(app, "nodes") == ["pi-2", "pi-3", "pi-1"]


async def test_a_paused_log_says_paused_on_its_state_line() -> None:
    app = fleet_app()
    app.client = ScriptedClient(URL, "token")
    async with app.run_test(size=(120, 40)) as pilot:
        await load(pilot)
        await pilot.press("l")
        screen = await until(
            pilot, lambda: app.screen if isinstance(app.screen, LogsScreen) else None, "logs"
        )
        state = screen.query_one("#state", Static)
        await until(pilot, lambda: "following (on pi-2)" in text_of(state), "following")
        await pilot.press("p")
        await until(pilot, lambda: "paused" in text_of(state), "paused on the state line")
        assert "following" not in text_of(state) and "pi-2" in text_of(state)
        await pilot.press("p")
        await until(pilot, lambda: "following (on pi-2)" in text_of(state), "following again")


async def test_a_long_toast_shows_its_whole_sentence_at_80x24() -> None:
    app = fleet_app()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await load(pilot)
        await focus_row(pilot, app, "nodes", "pi-2")
        await pilot.press("F")  # pi-2 is alive: the toast says why it cannot be forgotten
        toast = await until(pilot, lambda: next(iter(app.screen.query(Toast)), None), "a toast")
        await pilot.pause()
        message = str(toast._notification.message)
        assert "stop its agent first" in message
        footer = app.query_one(Footer)
        assert toast.region.bottom <= footer.region.y, "the footer covers the toast"
        lines = screen_lines(app)[toast.region.y : toast.region.bottom]
        x = toast.content_region.x
        shown = " ".join(line[x : x + toast.content_region.width].strip() for line in lines)
        assert message in shown


def test_the_node_questions_count_in_words() -> None:
    assert "it has no projects" in forget_question("pi-3", {"projects": []})
    assert "project(s)" not in forget_question("pi-3", {"projects": []})
    assert "its project web moves" in forget_question("pi-3", {"projects": ["web"]})
    assert "its 2 projects move" in forget_question("pi-3", {"projects": ["a", "b"]})
    assert "it has no projects" in drain_question("pi-3", {"projects": []})
    assert "its 2 projects stop and move" in drain_question("pi-3", {"projects": ["a", "b"]})


async def test_the_forget_dialog_of_a_node_without_projects() -> None:
    app = fleet_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await load(pilot)
        await focus_row(pilot, app, "nodes", "pi-3")
        await pilot.press("F")
        screen: Any = await until(
            pilot, lambda: app.screen if isinstance(app.screen, ConfirmScreen) else None, "F"
        )
        body = text_of(screen.query_one("#body", Static))
        assert "it has no projects" in body and "0 project" not in body


async def test_a_failed_projects_reason_comes_right_after_its_status() -> None:
    app = fleet_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await load(pilot)
        await focus_row(pilot, app, "projects", "door-sensor")
        text = text_of(app.query_one("#detail", Static))
        labels = [line.split()[0] for line in text.splitlines() if line.strip()]
        assert labels[:3] == ["project", "status", "reason"]

"""The TUI driven like a person drives it (Textual's pilot), against a real manager on loopback.

Nodes are protocol-simulated (`SimNode`): they join, poll and report like agents, so the tables
fill with real answers. Every key is checked through the manager's state, not the screen alone.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.coordinate import Coordinate
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, RichLog, Static, TextArea

from syncopate.client import ManagerClient
from syncopate.tui.app import SyncopateApp
from syncopate.tui.rows import PROJECT_COLUMNS
from syncopate.tui.screens import AddProjectScreen, CommandScreen, ConfirmScreen, LogsScreen
from tests.helpers import PASSWORD, RunningManager, SimNode, running_manager

URLS = {name: f"https://example.com/{name}.git" for name in ("alpha", "beta", "gamma")}


@dataclass
class World:
    manager: RunningManager
    nodes: dict[str, SimNode]

    def ctl(self) -> ManagerClient:
        return self.manager.client()

    async def status(self, name: str) -> dict[str, Any]:
        async with self.ctl() as ctl:
            return (await ctl.status([name]))[name]

    async def report_all(self, **extra: Any) -> None:
        """Each node reports every project it was given as running."""
        for node in self.nodes.values():
            for project in await node.poll():
                await node.report(project, "running", {"n": 1}, **extra)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with running_manager(tmp_path / "manager", node_timeout=30) as manager:
        nodes = {name: await SimNode.join(manager.url, name) for name in ("pi-1", "pi-2")}
        async with manager.client() as ctl:
            for name, url in URLS.items():
                await ctl.add(name, url, {"n": 0})
        running = World(manager, nodes)
        await running.report_all()
        try:
            yield running
        finally:
            for node in nodes.values():
                await node.close()


async def until(
    pilot: Pilot[None], check: Callable[[], Any], what: str, timeout: float = 10
) -> Any:
    """Let the app run until `check()` is truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        await pilot.pause(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def until_manager(check: Callable[[], Any], what: str, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def app_for(world: World) -> SyncopateApp:
    return SyncopateApp(world.manager.url, world.manager.token)


def table(app: SyncopateApp, kind: str) -> DataTable[Any]:
    return app.query_one(f"#{kind}", DataTable)


def row_names(app: SyncopateApp, kind: str) -> list[str]:
    grid = table(app, kind)
    return [
        str(grid.coordinate_to_cell_key(Coordinate(i, 0)).row_key.value)
        for i in range(grid.row_count)
    ]


def cell(app: SyncopateApp, kind: str, name: str, column: str) -> str:
    return str(table(app, kind).get_cell(name, column))


def text_of(widget: Static) -> str:
    """What a Static shows, as plain text."""
    console = Console(width=200, record=True, color_system=None, file=io.StringIO())
    console.print(widget.content)
    return console.export_text()


def bar(app: SyncopateApp) -> str:
    return text_of(app.query_one("#bar", Static))


async def loaded(pilot: Pilot[None], app: SyncopateApp) -> None:
    await until(pilot, lambda: len(row_names(app, "projects")) == 3, "the projects to show")


async def select(pilot: Pilot[None], app: SyncopateApp, kind: str, name: str) -> None:
    grid = table(app, kind)
    grid.focus()
    grid.move_cursor(row=grid.get_row_index(name))
    await until(pilot, lambda: app.selected == (kind, name), f"{name} to be selected")


async def test_the_tables_show_the_fleet(world: World) -> None:
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app)
        assert row_names(app, "projects") == ["alpha", "beta", "gamma"]
        assert row_names(app, "nodes") == ["pi-1", "pi-2"]
        info = await world.status("alpha")
        assert cell(app, "projects", "alpha", "node") == info["node"]
        assert cell(app, "projects", "alpha", "status") == "running"
        assert cell(app, "projects", "alpha", "vars").strip() == "1"
        assert "connected" in bar(app) and "projects 3/3 running" in bar(app)
        await select(pilot, app, "projects", "beta")
        detail = text_of(app.query_one("#detail", Static))
        assert "beta" in detail and "persistent variables" in detail


@pytest.mark.parametrize(
    ("key", "check"),
    [
        ("x", lambda info: info["desired"] == "stopped"),
        ("s", lambda info: info["desired"] == "running"),
        ("r", lambda info: info["restart"] == 1),
    ],
)
async def test_start_stop_restart_keys_act_on_the_selected_project(
    world: World, key: str, check: Callable[[dict[str, Any]], bool]
) -> None:
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app)
        if key == "s":
            async with world.ctl() as ctl:
                await ctl.stop(["beta"])
        await select(pilot, app, "projects", "beta")
        await pilot.press(key)

        async def acted() -> bool:
            return check(await world.status("beta"))

        await until_manager(acted, f"{key} to act on beta")
        assert (await world.status("alpha"))["restart"] == 0, "only the selected project"
        toasts: Callable[[], list[str]] = lambda: [n.message for n in app._notifications]  # noqa: E731
        await until(pilot, lambda: any("1 project(s)" in t for t in toasts()), "a toast")


async def test_reset_asks_first(world: World) -> None:
    await world.report_all()
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app)
        await select(pilot, app, "projects", "gamma")
        epoch = (await world.status("gamma"))["epoch"]
        await pilot.press("R")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirm dialog")
        await pilot.press("enter")  # Cancel has the focus
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), "the dialog to go")
        assert (await world.status("gamma"))["epoch"] == epoch
        await pilot.press("R")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirm dialog")
        await pilot.click("#confirm")

        async def reset() -> bool:
            return bool((await world.status("gamma"))["epoch"] == epoch + 1)

        await until_manager(reset, "gamma to be reset")


async def test_remove_asks_with_cancel_focused_and_cancel_changes_nothing(world: World) -> None:
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app)
        await select(pilot, app, "projects", "alpha")
        await pilot.press("d")
        dialog = await until(
            pilot, lambda: app.screen if isinstance(app.screen, ConfirmScreen) else None, "dialog"
        )
        body = text_of(dialog.query_one("#body", Static))
        assert "Remove alpha" in body and URLS["alpha"] in body and "cannot be undone" in body
        assert app.focused is not None and app.focused.id == "cancel"
        await pilot.press("enter")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), "the dialog to go")
        async with world.ctl() as ctl:
            assert set(await ctl.status()) == {"alpha", "beta", "gamma"}
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the dialog")
        await pilot.press("tab", "enter")  # to Remove, and press it

        async def gone() -> bool:
            async with world.ctl() as ctl:
                return set(await ctl.status()) == {"beta", "gamma"}

        await until_manager(gone, "alpha to be removed")
        await until(pilot, lambda: row_names(app, "projects") == ["beta", "gamma"], "the row gone")


async def test_add_form_rejects_a_bad_name_and_url_then_adds(world: World) -> None:
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app)
        await pilot.press("a")
        form = await until(
            pilot, lambda: app.screen if isinstance(app.screen, AddProjectScreen) else None, "form"
        )
        form.query_one("#field-name", Input).value = "../../etc"
        form.query_one("#field-url", Input).value = "ext::sh -c touch% /tmp/x"
        await pilot.click("#add")
        name_error = text_of(form.query_one("#error-name", Static))
        url_error = text_of(form.query_one("#error-url", Static))
        assert "not valid" in name_error
        assert "ext::" in url_error
        assert isinstance(app.screen, AddProjectScreen), "the form stays open"
        async with world.ctl() as ctl:
            assert set(await ctl.status()) == set(URLS)
        # Fixed: it is added, with its variables, and the form closes.
        form.query_one("#field-name", Input).value = "delta"
        form.query_one("#field-url", Input).value = "https://example.com/delta.git"
        form.query_one("#field-vars", TextArea).load_text("count=5\nlabel=hall")
        form.query_one("#field-url", Input).focus()
        await pilot.press("enter")  # Enter in a field submits the form
        await until(pilot, lambda: not isinstance(app.screen, AddProjectScreen), "form to close")
        info = await world.status("delta")
        assert info["initial_variables"] == {"count": 5, "label": "hall"}
        await until(pilot, lambda: "delta" in row_names(app, "projects"), "the new row")


async def test_add_form_shows_the_managers_refusal(world: World) -> None:
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app)
        await pilot.press("a")
        form = await until(
            pilot, lambda: app.screen if isinstance(app.screen, AddProjectScreen) else None, "form"
        )
        form.query_one("#field-name", Input).value = "alpha"  # exists already
        form.query_one("#field-url", Input).value = "https://example.com/other.git"
        await pilot.click("#add")
        error = form.query_one("#error-manager", Static)
        await until(pilot, lambda: "exists already" in text_of(error), "the refusal")
        assert isinstance(app.screen, AddProjectScreen)
        assert (await world.status("alpha"))["project-url"] == URLS["alpha"]


async def test_drain_acts_on_the_selected_node(world: World) -> None:
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app)
        await select(pilot, app, "nodes", "pi-2")
        await pilot.press("D")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the dialog")
        await pilot.click("#confirm")

        async def drained() -> bool:
            async with world.ctl() as ctl:
                return bool((await ctl.nodes())["pi-2"]["drained"])

        await until_manager(drained, "pi-2 to be drained")
        await until(pilot, lambda: "drained" in cell(app, "nodes", "pi-2", "status"), "the mark")


async def test_filter_narrows_both_tables(world: World) -> None:
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app)
        on_pi2 = [n for n in sorted(URLS) if (await world.status(n))["node"] == "pi-2"]
        await pilot.press("slash")
        await pilot.press(*"pi-2")
        await until(pilot, lambda: row_names(app, "projects") == on_pi2, "projects on pi-2")
        assert row_names(app, "nodes") == ["pi-2"]
        await pilot.press("enter")
        assert "filter: pi-2" in bar(app)
        await pilot.press("escape")
        await until(pilot, lambda: len(row_names(app, "projects")) == 3, "the filter cleared")
        assert row_names(app, "nodes") == ["pi-1", "pi-2"]


async def test_live_changes_appear_without_moving_the_cursor(world: World) -> None:
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app)
        await select(pilot, app, "projects", "gamma")
        projects = table(app, "projects")
        row_before = projects.cursor_row
        # Another project changes on its node: only its cell changes.
        owner = world.nodes[(await world.status("alpha"))["node"]]
        await owner.report("alpha", "crashed", {"n": 2})
        await until(pilot, lambda: cell(app, "projects", "alpha", "status") == "crashed", "crash")
        assert projects.cursor_row == row_before and app.selected == ("projects", "gamma")
        # A new project comes before gamma by name: the cursor stays on gamma.
        async with world.ctl() as ctl:
            await ctl.add("aardvark", "https://example.com/aardvark.git")
        await until(pilot, lambda: "aardvark" in row_names(app, "projects"), "the new row")
        assert app.selected == ("projects", "gamma")
        assert row_names(app, "projects")[projects.cursor_row] == "gamma"


async def test_disconnect_and_reconnect(tmp_path: Path) -> None:
    data = tmp_path / "manager"
    async with running_manager(data, node_timeout=30) as manager:
        url, token, port = manager.url, manager.token, int(manager.url.rsplit(":", 1)[1])
        async with manager.client() as ctl:
            await ctl.add("alpha", URLS["alpha"], start=False)
        app = SyncopateApp(url, token)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: "connected" in bar(app) and app.connected, "connected")
            await until(pilot, lambda: row_names(app, "projects") == ["alpha"], "alpha")
            await manager.runner.cleanup()  # the manager goes away
            shown = await until(
                pilot, lambda: "disconnected" in bar(app) and bar(app), "disconnected shown"
            )
            assert "retrying in" in shown and ("closed" in shown or "cannot reach" in shown)
            assert row_names(app, "projects") == ["alpha"], "the last state stays on screen"
            async with running_manager(data, node_timeout=30, port=port, keep_token=True) as again:
                async with again.client() as ctl:
                    await ctl.add("beta", URLS["beta"], start=False)
                await until(pilot, lambda: app.connected, "reconnected", timeout=15)
                await until(
                    pilot, lambda: row_names(app, "projects") == ["alpha", "beta"], "refreshed"
                )
                assert "connected" in bar(app) and "retrying" not in bar(app)


async def test_logs_key_follows_the_selected_projects_output(world: World) -> None:
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app)
        await select(pilot, app, "projects", "beta")
        owner = world.nodes[(await world.status("beta"))["node"]]
        lines: dict[str, Any] = {
            "log-stream": "s1",
            "log-seq": 0,
            "log-lines": ["first line", "second line"],
        }
        await owner.report("beta", "running", **lines)
        await pilot.press("l")
        screen = await until(
            pilot, lambda: app.screen if isinstance(app.screen, LogsScreen) else None, "logs"
        )
        log = screen.query_one(RichLog)
        await until(pilot, lambda: len(log.lines) == 2, "the kept lines")
        await owner.report("beta", "running", **{**lines, "log-seq": 2, "log-lines": ["third"]})
        await until(pilot, lambda: len(log.lines) == 3, "the new line, live")
        assert "third" in log.lines[-1].text
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, LogsScreen), "closed")


async def test_command_key_sends_to_the_selected_node_and_shows_the_response(
    tmp_path: Path,
) -> None:
    async with (
        running_manager(tmp_path / "manager", node_timeout=30) as manager,
        ManagerClient(manager.url) as node,
    ):
        name, token = await node.initialize(PASSWORD, "pi-9", agent_version="test")
        app = SyncopateApp(manager.url, manager.token)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: row_names(app, "nodes") == ["pi-9"], "the node")
            await select(pilot, app, "nodes", "pi-9")
            await pilot.press("c")
            screen = await until(
                pilot,
                lambda: app.screen if isinstance(app.screen, CommandScreen) else None,
                "the command dialog",
            )
            screen.query_one("#code", TextArea).load_text("print(6 * 7)")
            await pilot.click("#send")
            handed: list[dict[str, Any]] = []

            async def collected() -> bool:
                handed.extend((await node.node_status(name, token)).get("commands") or [])
                return bool(handed)

            await until_manager(collected, "the node to be handed the command")
            assert handed[0]["code"] == "print(6 * 7)"
            await node.node_command_result(name, token, handed[0]["id"], "42\n", 0, 0.01)
            state = screen.query_one("#state", Static)
            await until(pilot, lambda: "exit 0" in text_of(state), "the response")
            assert "42" in screen.query_one("#response", RichLog).lines[0].text


async def test_palette_jumps_to_a_project(world: World) -> None:
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app)
        await pilot.press("ctrl+p")
        await pilot.press(*"go to project gamma")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await until(pilot, lambda: app.selected == ("projects", "gamma"), "gamma selected")
        assert row_names(app, "projects")[table(app, "projects").cursor_row] == "gamma"


async def test_help_lists_every_key(world: World) -> None:
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app)
        await pilot.press("question_mark")
        await pilot.pause(0.1)
        text = " ".join(text_of(w) for w in app.screen.query(Static))
        for words in ("Start", "Stop", "Restart", "Reset", "Add", "Edit", "Remove", "Filter"):
            assert words in text
        for words in ("Logs", "Command", "Drain", "Quit", "Tab", "ctrl+p"):
            assert words in text
        await pilot.press("escape")
        await pilot.pause(0.05)
        assert app.screen is app.screen_stack[0]


async def test_clicking_a_header_sorts_by_that_column(world: World) -> None:
    owner = world.nodes[(await world.status("gamma"))["node"]]
    await owner.report("gamma", "running", ram=900.0)
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app)
        await until(pilot, lambda: "900" in cell(app, "projects", "gamma", "ram"), "gamma's RAM")
        # The RAM header: past the border and the six columns before it (each padded by 2).
        x = 1 + sum(c.width + 2 for c in PROJECT_COLUMNS[:6]) + 2
        assert PROJECT_COLUMNS[6].key == "ram"
        await pilot.click("#projects", offset=(x, 1))
        await until(pilot, lambda: row_names(app, "projects")[-1] == "gamma", "sorted by RAM")
        await pilot.click("#projects", offset=(x, 1))
        await until(pilot, lambda: row_names(app, "projects")[0] == "gamma", "reversed")

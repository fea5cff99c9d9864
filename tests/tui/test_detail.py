"""Enter's full-screen detail, driven like a person drives it, against a real manager on loopback:
what it shows of a project and of a node, that it keeps up with the fleet, that it scrolls, and
that Esc returns to the same row."""

from __future__ import annotations

import re
from typing import Any

from textual.command import CommandList, CommandPalette
from textual.containers import VerticalScroll
from textual.pilot import Pilot
from textual.widgets import Static

from syncopate.tui.app import SyncopateApp
from syncopate.tui.palette import palette_commands
from syncopate.tui.screens import DetailScreen, HelpScreen
from tests.tui.test_pilot import (
    World,
    app_for,
    loaded,
    row_names,
    select,
    table,
    text_of,
    until,
    world,  # noqa: F401 (the fixture)
)

REASON = (
    "exited with code 3 three times in a row within its grace: the last lines of its output "
    "say the sensor on /dev/i2c-1 did not answer (Remote I/O error), see the output below"
)
OUTPUT: dict[str, Any] = {
    "log-stream": "s1",
    "log-seq": 0,
    "log-lines": ["booting the sensor", "sensor on /dev/i2c-1: Remote I/O error"],
}


async def opened(pilot: Pilot[None], app: SyncopateApp) -> DetailScreen:
    """Enter, then the detail screen once it is up."""
    await pilot.press("enter")
    screen = await until(
        pilot, lambda: app.screen if isinstance(app.screen, DetailScreen) else None, "detail"
    )
    assert isinstance(screen, DetailScreen)
    return screen


def body(screen: DetailScreen) -> str:
    return text_of(screen.query_one("#detail-body", Static))


async def beta_with_everything(fleet: World) -> None:
    """beta: env and a secret (set by the admin: its history), crashed with a long reason,
    rolled back from a bad commit, a variable, and two lines of output kept by the manager."""
    async with fleet.ctl() as ctl:
        await ctl.set_project(
            "beta", env={"GREETING": "hello-value"}, secrets={"API_TOKEN": "s3cret-value"}
        )
    owner = fleet.nodes[(await fleet.status("beta"))["node"]]
    await owner.poll()  # the epoch the change gave it
    rollout: dict[str, Any] = {
        "commit": "5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d",
        "good-commit": "77e1d0c95a3b2f6e",
        "bad-commit": "5e4d3c2b1a0f9e8d",
        "bad-reason": "it crashed within its grace",
    }
    variables = {"readings": 812, "place": "hall"}
    await owner.report("beta", "crashed", variables, reason=REASON, **rollout, **OUTPUT)


async def test_enter_on_a_project_shows_all_of_it_but_secret_values(world: World) -> None:  # noqa: F811
    await beta_with_everything(world)
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app)
        await select(pilot, app, "projects", "beta")
        screen = await opened(pilot, app)
        # The output comes from the manager's kept log, fetched when the screen opens.
        await until(pilot, lambda: "Remote I/O error" in body(screen), "the last output")
        # The kept lines come with the time each was produced, as in the logs view.
        timed = r"\d\d:\d\d:\d\d booting the sensor"
        await until(pilot, lambda: re.search(timed, body(screen)), "the kept output, timed")
        text = body(screen)
        assert " ".join(REASON.split()) in " ".join(text.split()), "the whole reason"
        for shown in ("crashed", "readings = 812", 'place = "hall"', "GREETING", "API_TOKEN"):
            assert shown in text
        assert "hello-value" not in text and "s3cret-value" not in text, "names only"
        assert "5e4d3c2b1a0f" in text and "77e1d0c95a3b" in text
        assert "it crashed within its grace" in text
        assert "booting the sensor" in text
        history = text.split("history")[1]
        assert "env, secrets" in history or "secrets, env" in history, history
        assert "project beta" in text_of(screen.query_one("#detail-title", Static))


async def test_the_detail_keeps_up_with_the_fleet(world: World) -> None:  # noqa: F811
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app)
        await select(pilot, app, "projects", "gamma")
        screen = await opened(pilot, app)
        assert "n = 1" in body(screen)
        owner = world.nodes[(await world.status("gamma"))["node"]]
        await owner.report("gamma", "running", {"n": 42}, **OUTPUT)
        await until(pilot, lambda: "n = 42" in body(screen), "the new variable, live")
        await until(pilot, lambda: "booting the sensor" in body(screen), "the new output")
        async with world.ctl() as ctl:
            await ctl.remove("gamma", "https://example.com/gamma.git")
        await until(pilot, lambda: "gamma is gone" in body(screen), "it says gamma went")


async def test_enter_on_a_node_shows_its_metrics_labels_and_projects(world: World) -> None:  # noqa: F811
    node = world.nodes["pi-1"]
    metrics = {"cpu": 37.0, "load": 0.52, "temperature": 48.3, "uptime": 273_600.0}
    await node.client.node_status(node.name, node.token, metrics=metrics)
    async with world.ctl() as ctl:
        await ctl.label("pi-1", {"room": "hall", "camera": ""})
        placed = sorted((await ctl.nodes())["pi-1"]["projects"])
    assert placed, "the fixture places a project on each node"
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app)
        await select(pilot, app, "nodes", "pi-1")
        screen = await opened(pilot, app)
        text = body(screen)
        for shown in ("alive", "camera  room=hall", "37%", "0.52", "48.3 °C", "3d 4h"):
            assert shown in text, shown
        assert f"projects on it ({len(placed)})" in text
        for name in placed:
            assert name in text.split("projects on it")[1]
        assert "node pi-1" in text_of(screen.query_one("#detail-title", Static))
        await node.poll()
        await node.report(placed[0], "crashed", {"n": 2})  # live: its project's status
        await until(pilot, lambda: "crashed" in body(screen), f"{placed[0]} crashed, live")


async def test_escape_returns_to_the_same_row(world: World) -> None:  # noqa: F811
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app)
        await select(pilot, app, "projects", "beta")
        await opened(pilot, app)
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.screen_stack[0], "the main screen")
        assert app.selected == ("projects", "beta")
        projects = table(app, "projects")
        assert row_names(app, "projects")[projects.cursor_row] == "beta"
        assert app.focused is projects
        await pilot.press("j", "enter")  # and Enter again opens the next row's
        screen = await until(
            pilot, lambda: app.screen if isinstance(app.screen, DetailScreen) else None, "again"
        )
        assert "project gamma" in text_of(screen.query_one("#detail-title", Static))


async def test_the_detail_scrolls(world: World) -> None:  # noqa: F811
    await beta_with_everything(world)
    app = app_for(world)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, app)
        await select(pilot, app, "projects", "beta")
        screen = await opened(pilot, app)
        scroll = screen.query_one("#detail-scroll", VerticalScroll)
        await until(pilot, lambda: scroll.max_scroll_y > 10, "more than a screenful")
        steps = [
            ("j", lambda: scroll.scroll_y == 1),
            ("down", lambda: scroll.scroll_y == 2),
            ("k", lambda: scroll.scroll_y == 1),
            ("pagedown", lambda: scroll.scroll_y > 10),
            ("end", lambda: scroll.scroll_y == scroll.max_scroll_y),
            ("pageup", lambda: scroll.scroll_y < scroll.max_scroll_y),
            ("home", lambda: scroll.scroll_y == 0),
        ]
        for key, where in steps:
            await pilot.press(key)
            await until(pilot, where, f"{key} to scroll")


async def test_the_palette_and_help_list_the_detail(world: World) -> None:  # noqa: F811
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app)
        await select(pilot, app, "projects", "alpha")
        await pilot.press("question_mark")
        helped = await until(
            pilot, lambda: app.screen if isinstance(app.screen, HelpScreen) else None, "help"
        )
        keys = " ".join(text_of(w) for w in helped.query(Static))
        assert "Enter  Detail" in keys
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.screen_stack[0], "help closed")
        await pilot.press("ctrl+p", *"Detail")
        palette = await until(
            pilot, lambda: app.screen if isinstance(app.screen, CommandPalette) else None, "palette"
        )
        found = palette.query_one(CommandList)
        await until(pilot, lambda: found.option_count == 1, "the palette to find Detail")
        await pilot.press("enter")  # a single match: Enter runs it
        screen = await until(
            pilot, lambda: app.screen if isinstance(app.screen, DetailScreen) else None, "detail"
        )
        assert "project alpha" in text_of(screen.query_one("#detail-title", Static))
        # Over the detail the palette offers none of the main screen's keys: they would act
        # behind it.
        assert not list(palette_commands(app, screen))
        assert "Detail" in [c.title for c in palette_commands(app, app.screen_stack[0])]

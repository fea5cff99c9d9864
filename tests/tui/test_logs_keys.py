"""The logs view's keys against a real manager on loopback: `/` shows only the lines with a
text (Esc clears it), `p` and space pause following while lines keep arriving."""

from __future__ import annotations

import re
from typing import Any

import pytest
from textual.widgets import Label, RichLog

from syncopate.tui.app import SyncopateApp
from syncopate.tui.screens import LogsScreen
from tests.helpers import SimNode
from tests.tui.test_pilot import (
    World,
    app_for,
    loaded,
    select,
    text_of,
    until,
    world,  # noqa: F401 (the fixture)
)


def shown(screen: LogsScreen) -> list[str]:
    """The lines the view shows, without the time each starts with (checked here)."""
    lines = [strip.text.rstrip() for strip in screen.query_one("#log", RichLog).lines]
    for line in lines:
        assert re.match(r"\d\d:\d\d:\d\d ", line), f"no HH:MM:SS time first: {line!r}"
    return [line[len("12:01:02 ") :] for line in lines]


def title(screen: LogsScreen) -> str:
    return text_of(screen.query_one("#title", Label))


async def open_logs(fleet: World, app: SyncopateApp, pilot: Any) -> tuple[LogsScreen, SimNode]:
    """The logs view of beta, with its first three lines shown; and beta's node."""
    await loaded(pilot, app)
    await select(pilot, app, "projects", "beta")
    owner = fleet.nodes[(await fleet.status("beta"))["node"]]
    await more(owner, 0, "GET /a 200", "GET /b 500", "POST /a 201")
    await pilot.press("l")
    screen = await until(
        pilot, lambda: app.screen if isinstance(app.screen, LogsScreen) else None, "logs"
    )
    await until(pilot, lambda: len(shown(screen)) == 3, "the kept lines")
    return screen, owner


async def more(owner: SimNode, seq: int, *lines: str) -> None:
    log: dict[str, Any] = {"log-stream": "s1", "log-seq": seq, "log-lines": list(lines)}
    await owner.report("beta", "running", **log)


async def test_slash_filters_the_lines_and_escape_clears_it(world: World) -> None:  # noqa: F811
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        screen, owner = await open_logs(world, app, pilot)
        await pilot.press("slash", *"/a", "enter")
        await until(pilot, lambda: shown(screen) == ["GET /a 200", "POST /a 201"], "the filter")
        assert "lines with “/a”" in title(screen)
        # New lines pass the filter, or do not show.
        await more(owner, 3, "GET /c 200", "PUT /a 204")
        await until(pilot, lambda: shown(screen)[-1] == "PUT /a 204", "a new matching line")
        assert "GET /c 200" not in shown(screen)
        await pilot.press("escape")
        await until(pilot, lambda: len(shown(screen)) == 5, "every line again")
        assert "lines with" not in title(screen)
        assert isinstance(app.screen, LogsScreen), "the first Esc clears, the second closes"
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, LogsScreen), "closed")


@pytest.mark.parametrize("key", ["p", "space"])
async def test_pause_keeps_new_lines_waiting_and_resume_shows_them(
    world: World,  # noqa: F811
    key: str,
) -> None:
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        screen, owner = await open_logs(world, app, pilot)
        await pilot.press(key)
        await until(pilot, lambda: "paused, 0 new line(s) wait" in title(screen), "paused")
        await more(owner, 3, "GET /c 200", "GET /d 200")
        await until(pilot, lambda: "paused, 2 new line(s) wait" in title(screen), "2 waiting")
        assert len(shown(screen)) == 3, "the view does not move while paused"
        await pilot.press(key)
        await until(pilot, lambda: shown(screen)[-2:] == ["GET /c 200", "GET /d 200"], "resumed")
        assert "paused" not in title(screen) and len(shown(screen)) == 5
        await more(owner, 5, "GET /e 200")
        await until(pilot, lambda: shown(screen)[-1] == "GET /e 200", "following again")

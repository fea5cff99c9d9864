"""Toasts that do not pile up over the tables, and the main filter keeping the node of a
project it matches."""

from __future__ import annotations

from textual.widgets._toast import Toast

from syncopate.tui.app import SyncopateApp
from syncopate.tui.toasts import MAX_TOASTS
from tests.tui.test_pilot import (
    World,
    app_for,
    loaded,
    row_names,
    select,
    table,
    until,
    world,  # noqa: F401 (the fixture)
)
from tests.tui.test_snapshots import fleet_app, load


def toasts(app: SyncopateApp) -> list[Toast]:
    return list(app.screen.query(Toast))


async def test_toasts_are_few_and_clear_of_the_tables_at_80x24() -> None:
    app = fleet_app()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await load(pilot)
        for n in range(5):
            app.notify(f"restart air-quality: asked pi-2 to restart it ({n})", title="restart")
        await until(
            pilot,
            lambda: [t._notification.message[-3:] for t in toasts(app)] == ["(3)", "(4)"],
            "the newest two toasts",
        )
        shown = toasts(app)
        assert len(shown) == MAX_TOASTS
        assert len(list(app._notifications)) == MAX_TOASTS
        for toast in shown:
            for kind in ("nodes", "projects"):
                overlap = toast.region.intersection(table(app, kind).region)
                assert overlap.area == 0, f"a toast covers the {kind} table: {toast.region}"


async def test_the_same_toast_again_replaces_the_first() -> None:
    app = fleet_app()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await load(pilot)
        app.notify("an older one")
        await until(pilot, lambda: len(toasts(app)) == 1, "the first toast")
        for _ in range(3):
            await pilot.press("C")  # the projects table has no cpu column: a warning
        await until(pilot, lambda: len(list(app._notifications)) == 2, "two toasts")
        await pilot.pause()
        messages = [n.message for n in app._notifications]
        assert messages == ["an older one", "the projects table has no cpu column"]


async def test_filtering_by_a_project_keeps_its_node(world: World) -> None:  # noqa: F811
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app)
        node = (await world.status("gamma"))["node"]
        await select(pilot, app, "projects", "alpha")
        await pilot.press("slash", *"gamm", "enter")
        await until(pilot, lambda: row_names(app, "projects") == ["gamma"], "gamma alone")
        await until(pilot, lambda: row_names(app, "nodes") == [node], "gamma's node kept")

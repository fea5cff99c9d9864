"""An every-node project in the TUI, against a real manager: its copies are rows under it, and
a key on a copy's row acts on that copy alone."""

from __future__ import annotations

from tests.tui.test_pilot import (
    World,
    app_for,
    cell,
    row_names,
    select,
    until,
    until_manager,
    world,  # noqa: F401 (the fixture)
)


async def test_copies_are_rows_under_their_project(world: World) -> None:  # noqa: F811
    async with world.ctl() as ctl:
        await ctl.add("mon", "https://example.com/mon.git", {"n": 0}, every_node=True)
    await world.report_all()
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        expected = ["alpha", "beta", "gamma", "mon", "mon@pi-1", "mon@pi-2"]
        await until(pilot, lambda: row_names(app, "projects") == expected, "the copies' rows")
        assert cell(app, "projects", "mon", "status") == "2/2 running"
        assert cell(app, "projects", "mon", "node") == "every"
        assert cell(app, "projects", "mon@pi-2", "name") == "└@pi-2"
        assert cell(app, "projects", "mon@pi-2", "node") == "pi-2"
        await select(pilot, app, "projects", "mon@pi-2")
        await pilot.press("x")

        async def stopped() -> bool:
            copies = (await world.status("mon"))["copies"]
            return bool(copies["pi-2"]["desired"] == "stopped")

        await until_manager(stopped, "x to stop the copy on pi-2")
        copies = (await world.status("mon"))["copies"]
        assert copies["pi-1"]["desired"] == "running", "only the selected copy"


async def test_edit_and_remove_on_a_copys_row_mean_its_project(world: World) -> None:  # noqa: F811
    async with world.ctl() as ctl:
        await ctl.add("mon", "https://example.com/mon.git", every_node=True)
    await world.report_all()
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: "mon@pi-1" in row_names(app, "projects"), "the copy's row")
        await select(pilot, app, "projects", "mon@pi-1")
        assert app.selected_project(whole=True) == "mon"
        assert app.selected_project() == "mon@pi-1"

"""Shift+letter sorts the focused table by a column, k9s style, against a real manager on
loopback: the rows' order is read from the table, the arrow from its header."""

from __future__ import annotations

from textual.widgets.data_table import ColumnKey

from syncopate.tui.app import SyncopateApp
from syncopate.tui.sort_keys import SORT_KEYS, help_lines
from tests.tui.test_pilot import (
    World,
    app_for,
    cell,
    loaded,
    row_names,
    select,
    table,
    until,
    world,  # noqa: F401 (the fixture)
)


def label(app: SyncopateApp, kind: str, column: str) -> str:
    return table(app, kind).columns[ColumnKey(column)].label.plain


async def test_shift_m_sorts_projects_by_memory_and_again_reverses(world: World) -> None:  # noqa: F811
    for name, ram in (("alpha", 300.0), ("beta", 100.0), ("gamma", 200.0)):
        owner = world.nodes[(await world.status(name))["node"]]
        await owner.report(name, "running", ram=ram)
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app)
        await until(pilot, lambda: "300" in cell(app, "projects", "alpha", "ram"), "the RAM")
        await select(pilot, app, "projects", "gamma")
        assert label(app, "projects", "ram") == "RAM", "no arrow before a sort"
        await pilot.press("M")
        await until(pilot, lambda: row_names(app, "projects") == ["beta", "gamma", "alpha"], "M")
        assert label(app, "projects", "ram") == "RAM↑"
        assert app.selected == ("projects", "gamma"), "the selection stays on its row"
        await pilot.press("M")
        await until(pilot, lambda: row_names(app, "projects") == ["alpha", "gamma", "beta"], "MM")
        assert label(app, "projects", "ram") == "RAM↓"
        await pilot.press("N")
        await until(pilot, lambda: row_names(app, "projects") == ["alpha", "beta", "gamma"], "N")
        assert label(app, "projects", "name") == "NAME↑"
        assert label(app, "projects", "ram") == "RAM", "one arrow, on the sorted column"
        # A sort reads the values of the moment.
        owner = world.nodes[(await world.status("beta"))["node"]]
        await owner.report("beta", "running", ram=900.0)
        await until(pilot, lambda: "900" in cell(app, "projects", "beta", "ram"), "beta's RAM")
        await pilot.press("M")
        await until(pilot, lambda: row_names(app, "projects")[-1] == "beta", "beta last by RAM")


async def test_keys_sort_the_focused_table_only(world: World) -> None:  # noqa: F811
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app)
        projects = row_names(app, "projects")
        await select(pilot, app, "nodes", "pi-1")
        # Already by name: N again reverses it, and marks the header.
        await pilot.press("N")
        await until(pilot, lambda: row_names(app, "nodes") == ["pi-2", "pi-1"], "reversed")
        assert label(app, "nodes", "name") == "NAME↓"
        assert row_names(app, "projects") == projects, "the other table keeps its order"
        await pilot.press("S")
        await until(pilot, lambda: label(app, "nodes", "status") == "STATUS↑", "by status")
        # A narrow column gives its last letter to the arrow.
        await pilot.press("P")
        await until(pilot, lambda: label(app, "nodes", "projects") == "PRO↑", "by projects")


async def test_a_letter_the_table_has_no_column_for_says_so(world: World) -> None:  # noqa: F811
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app)
        await select(pilot, app, "projects", "alpha")
        before = row_names(app, "projects")
        await pilot.press("C")  # cpu: a node's column
        await until(
            pilot,
            lambda: any("no cpu column" in str(n.message) for n in app._notifications),
            "the warning",
        )
        assert row_names(app, "projects") == before


def test_the_help_lines_fit_the_dialog_and_name_every_key() -> None:
    lines = help_lines()
    assert all(len(line) <= 72 - 19 for line in lines), "the dialog's width, past the key column"
    for key in SORT_KEYS:
        assert f"{key.letter} {key.meaning}" in " ".join(lines)

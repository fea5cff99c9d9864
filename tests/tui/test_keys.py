"""The keys a k9s or lazydocker user reaches for, against a real manager on loopback: `y`/`n`/Esc
in the confirm dialog, `j`/`k` in the tables, `u` (undrain) and `F` (forget) on a node."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Label, Static
from textual.widgets._footer import FooterKey

from syncopate.tui.app import SyncopateApp
from syncopate.tui.screens import ConfirmScreen
from tests.helpers import RunningManager, SimNode, running_manager
from tests.tui.test_pilot import (
    World,
    app_for,
    cell,
    loaded,
    row_names,
    select,
    table,
    text_of,
    until,
    until_manager,
    world,  # noqa: F401 (the fixture)
)


async def dialog(pilot: Pilot[None], app: SyncopateApp) -> ConfirmScreen:
    """The confirm dialog, once it is up."""
    screen = await until(
        pilot,
        lambda: app.screen if isinstance(app.screen, ConfirmScreen) else None,
        "the confirm dialog",
    )
    assert isinstance(screen, ConfirmScreen)
    return screen


async def settled(pilot: Pilot[None], app: SyncopateApp) -> None:
    """The dialog gone, and every action it may have started finished (so the manager's state
    tells whether one was sent)."""
    await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), "the dialog to go")
    await pilot.pause()
    actions = [w for w in app.workers if w.group == "actions"]
    if actions:  # (an empty list would wait for every worker, the endless /events one too)
        await app.workers.wait_for_complete(actions)


async def drained(fleet: World, node: str) -> bool:
    async with fleet.ctl() as ctl:
        return bool((await ctl.nodes())[node]["drained"])


async def test_y_confirms_and_the_dialog_says_so(world: World) -> None:  # noqa: F811
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app)
        await select(pilot, app, "projects", "alpha")
        await pilot.press("d")
        screen = await dialog(pilot, app)
        assert "y yes · n no" in text_of(screen.query_one("#keys", Label))
        assert app.focused is not None and app.focused.id == "cancel", "Enter stays safe"
        await pilot.press("y")
        await settled(pilot, app)

        async def gone() -> bool:
            async with world.ctl() as ctl:
                return set(await ctl.status()) == {"beta", "gamma"}

        await until_manager(gone, "y to remove alpha")


@pytest.mark.parametrize("key", ["n", "escape"])
async def test_n_and_escape_cancel(world: World, key: str) -> None:  # noqa: F811
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app)
        await select(pilot, app, "nodes", "pi-2")
        await pilot.press("D")
        await dialog(pilot, app)
        await pilot.press(key)
        await settled(pilot, app)
        assert not await drained(world, "pi-2"), f"{key} sent the drain"
        assert app.screen is app.screen_stack[0]
        # The same dialog, answered y this time, does drain: the cancel was the key's doing.
        await pilot.press("D")
        await dialog(pilot, app)
        await pilot.press("y")
        await until_manager(lambda: drained(world, "pi-2"), "y to drain pi-2")


async def test_j_and_k_move_the_cursor(world: World) -> None:  # noqa: F811
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app)
        await select(pilot, app, "projects", "alpha")
        await pilot.press("j")
        await until(pilot, lambda: app.selected == ("projects", "beta"), "j to select beta")
        await pilot.press("j", "j")  # past the last row: it stays there
        await until(pilot, lambda: app.selected == ("projects", "gamma"), "j to reach gamma")
        assert table(app, "projects").cursor_row == 2
        await pilot.press("k")
        await until(pilot, lambda: app.selected == ("projects", "beta"), "k to go back up")
        await select(pilot, app, "nodes", "pi-1")
        await pilot.press("j")
        await until(pilot, lambda: app.selected == ("nodes", "pi-2"), "j in the nodes table")
        await pilot.press("k")
        await until(pilot, lambda: app.selected == ("nodes", "pi-1"), "k in the nodes table")


async def test_u_undrains_the_selected_node_after_asking(world: World) -> None:  # noqa: F811
    async with world.ctl() as ctl:
        await ctl.drain("pi-2")
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app)
        await until(pilot, lambda: "drained" in cell(app, "nodes", "pi-2", "status"), "drained")
        await select(pilot, app, "nodes", "pi-2")
        await pilot.press("u")
        screen = await dialog(pilot, app)
        assert "Undrain pi-2" in text_of(screen.query_one("#body", Static))
        await pilot.press("y")

        async def undrained() -> bool:
            return not await drained(world, "pi-2")

        await until_manager(undrained, "u to undrain pi-2")
        await until(
            pilot, lambda: "drained" not in cell(app, "nodes", "pi-2", "status"), "the mark gone"
        )
        # A node that is not drained: nothing to ask, the toast says why.
        await pilot.press("u")
        await until(pilot, lambda: "pi-2 is not drained" in toasts(app), "the warning")
        assert not isinstance(app.screen, ConfirmScreen)


def toasts(app: SyncopateApp) -> str:
    return " | ".join(str(n.message) for n in app._notifications)


async def dead_node(manager: RunningManager, name: str) -> SimNode:
    """A node that joined and then went silent: dead after the manager's node timeout."""
    node = await SimNode.join(manager.url, name)

    async def dead() -> bool:
        async with manager.client() as ctl:
            return bool((await ctl.nodes())[name]["status"] == "dead")

    await until_manager(dead, f"{name} to be declared dead", timeout=20)
    return node


async def test_shift_f_forgets_a_dead_node_after_asking(tmp_path: Path) -> None:
    async with running_manager(tmp_path / "manager", node_timeout=1) as manager:
        silent = await dead_node(manager, "pi-3")
        app = SyncopateApp(manager.url, manager.token)
        try:
            async with app.run_test(size=(120, 40)) as pilot:
                await until(pilot, lambda: "pi-3" in row_names(app, "nodes"), "the dead node")
                assert "dead" in cell(app, "nodes", "pi-3", "status")
                await select(pilot, app, "nodes", "pi-3")
                await pilot.press("F")
                screen = await dialog(pilot, app)
                body = text_of(screen.query_one("#body", Static))
                assert "Forget pi-3" in body and "join again" in body
                await pilot.press("y")

                async def forgotten() -> bool:
                    async with manager.client() as ctl:
                        return "pi-3" not in await ctl.nodes()

                await until_manager(forgotten, "F to forget pi-3")
                await until(pilot, lambda: "pi-3" not in row_names(app, "nodes"), "its row gone")
        finally:
            await silent.close()


async def test_given_two_manager_urls_the_tui_shows_the_one_that_answers(
    tmp_path: Path,
) -> None:
    """`syncopate tui --manager URL1,URL2` (DESIGN §13): the first does not answer."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"  # nothing listens once closed
    async with running_manager(tmp_path / "manager", node_timeout=5) as manager:
        node = await SimNode.join(manager.url, "pi-9")
        await node.poll()
        app = SyncopateApp(f"{dead},{manager.url}", manager.token)
        try:
            async with app.run_test(size=(120, 40)) as pilot:
                await until(pilot, lambda: "pi-9" in row_names(app, "nodes"), "pi-9's row")
                assert "alive" in cell(app, "nodes", "pi-9", "status")
        finally:
            await node.close()


async def test_shift_f_on_an_alive_node_says_why_and_asks_nothing(world: World) -> None:  # noqa: F811
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app)
        await select(pilot, app, "nodes", "pi-1")
        await pilot.press("F")
        await until(pilot, lambda: "pi-1 is alive" in toasts(app), "the warning")
        assert not isinstance(app.screen, ConfirmScreen)
        async with world.ctl() as ctl:
            assert "pi-1" in await ctl.nodes()


def footer_keys(app: SyncopateApp) -> list[str]:
    return [f"{key.key_display} {key.description}" for key in app.query(FooterKey)]


async def test_the_footer_keeps_the_keys_that_matter_and_follows_the_width() -> None:
    app = SyncopateApp("http://127.0.0.1:9", "token", live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: footer_keys(app), "the footer")
        narrow = footer_keys(app)
        assert narrow[:3] == ["q Quit", "? Help", "/ Filter"]
        assert "D Drain" in narrow and "F Forget" not in narrow
        assert sum(len(k) + 1 for k in narrow) - 1 <= 80, "whole keys, none cut"
        await pilot.resize_terminal(200, 50)
        await until(pilot, lambda: "F Forget" in footer_keys(app), "every key at 200 columns")
        assert footer_keys(app)[: len(narrow)] == narrow, "the same order"
        await pilot.resize_terminal(40, 24)
        await until(pilot, lambda: "D Drain" not in footer_keys(app), "fewer keys at 40")
        assert footer_keys(app)[:2] == ["q Quit", "? Help"]

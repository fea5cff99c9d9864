"""A viewer's token in the TUI: the fleet shows, and a key it may not use (stop) is one toast
naming the role it needs; the app carries on and the project keeps running."""

from __future__ import annotations

from textual.widgets._toast import Toast

from syncopate.manager.server import user_token
from syncopate.roles import Role
from syncopate.tui.app import SyncopateApp
from tests.tui.test_pilot import (
    World,
    loaded,
    select,
    until,
    world,  # noqa: F401 (the fixture)
)


async def test_a_viewer_pressing_stop_gets_a_toast_naming_the_role(
    world: World,  # noqa: F811
) -> None:
    token = user_token(world.manager.state.store, "vera", Role.VIEWER)
    app = SyncopateApp(world.manager.url, token)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await loaded(pilot, app)
        await select(pilot, app, "projects", "alpha")
        await pilot.press("x")
        refusal = "action stop needs the operator role; vera's token is viewer"

        def toasted() -> list[str]:
            return [
                f"{t._notification.title}: {t._notification.message}"
                for t in app.screen.query(Toast)
            ]

        shown = await until(pilot, toasted, "the refusal's toast")
        assert shown == [f"stop alpha failed: {refusal}"]
        assert app.is_running and app.connected  # no crash; the feed still runs
    assert (await world.status("alpha"))["desired"] == "running"

"""A TUI whose token is revoked while it runs: the manager closes its feed as revoked, the
header says the token was revoked before anything else, the TUI stops trying it (each try
would count as a guess against the address), and the tables stay on screen, greyed, under a
header whose counts say they are the last known."""

from __future__ import annotations

from syncopate.manager.server import user_token
from syncopate.manager.tokens import revoke_token
from syncopate.roles import Role
from syncopate.tui.app import SyncopateApp
from syncopate.tui.widgets.fleet_table import FleetTable
from tests.tui.test_pilot import (
    World,
    bar,
    loaded,
    row_names,
    until,
    world,  # noqa: F401 (the fixture)
)


async def test_a_revoked_token_says_so_and_greys_the_last_known_tables(
    world: World,  # noqa: F811
) -> None:
    store = world.manager.state.store
    token = user_token(store, "rhea", Role.VIEWER)
    app = SyncopateApp(world.manager.url, token)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app)
        tables = list(app.query(FleetTable))
        assert not app.has_class("-stale")
        assert all(t.styles.text_opacity == 1 for t in tables)
        revoke_token(store, "rhea")  # as `manager revoke rhea` does (another process, or here)
        shown = await until(pilot, lambda: "token revoked" in bar(app) and bar(app), "refusal")
        assert shown.startswith("○ token revoked — not retrying; start again with a valid ")
        await until(
            pilot,
            lambda: not [w for w in app.workers if w.group == "feed" and w.is_running],
            "the feed worker to end",
        )
        assert "last known: nodes" in shown
        assert app.has_class("-stale") and not app.connected
        assert all(t.styles.text_opacity < 1 for t in tables)
        assert row_names(app, "projects") == ["alpha", "beta", "gamma"]  # still shown

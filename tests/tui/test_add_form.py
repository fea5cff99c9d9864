"""`a`, the add form's DESIGN section 12 fields (run on, every node, health command, max RAM),
driven by the pilot against a real manager on loopback (`test_pilot`'s world). What was stored
is checked through the manager's own `status`; the form's other fields are `test_pilot`'s."""

from __future__ import annotations

from textual.pilot import Pilot
from textual.widgets import Checkbox, Input, Static

from syncopate.tui.app import SyncopateApp
from syncopate.tui.screens import AddProjectScreen
from tests.tui import test_pilot
from tests.tui.test_pilot import URLS, World, app_for, loaded, text_of, until

world = test_pilot.world  # the fixture: three projects on two simulated nodes


async def open_form(pilot: Pilot[None], app: SyncopateApp) -> AddProjectScreen:
    await loaded(pilot, app)
    await pilot.press("a")
    form: AddProjectScreen = await until(
        pilot,
        lambda: app.screen if isinstance(app.screen, AddProjectScreen) else None,
        "the add form",
    )
    await pilot.pause()
    return form


def fill(form: AddProjectScreen, **values: str) -> None:
    """Type each value into its field (`max_ram` is the field `max-ram`)."""
    for key, value in values.items():
        form.query_one(f"#field-{key.replace('_', '-')}", Input).value = value


async def submit(pilot: Pilot[None], form: AddProjectScreen) -> None:
    """Enter in a field adds, as the Add button does (and never misses a moved button)."""
    form.query_one("#field-name", Input).focus()
    await pilot.press("enter")


async def test_the_new_fields_are_stored(world: World) -> None:
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        form = await open_form(pilot, app)
        fill(
            form,
            name="delta",
            url="https://example.com/delta.git",
            on="room=lab,gpu zone!=cold",
            health_cmd="curl -fs localhost:8080/ok",
            max_ram="200",
        )
        form.query_one("#field-every-node", Checkbox).value = True
        await submit(pilot, form)
        await until(pilot, lambda: not isinstance(app.screen, AddProjectScreen), "form to close")
    info = await world.status("delta")
    assert info["on"] == ["room=lab", "gpu", "zone!=cold"]
    assert info["every-node"] is True
    assert info["health"]["cmd"] == "curl -fs localhost:8080/ok"
    assert info["health"]["http"] is None
    assert info["max-ram"] == 200.0
    assert info["stay"] is False and info["exclusive"] is False


async def test_left_empty_they_are_the_defaults(world: World) -> None:
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        form = await open_form(pilot, app)
        fill(form, name="delta", url="https://example.com/delta.git")
        await submit(pilot, form)
        await until(pilot, lambda: not isinstance(app.screen, AddProjectScreen), "form to close")
    info = await world.status("delta")
    assert (info["on"], info["every-node"], info["health"], info["max-ram"]) == ([], False, None, 0)


async def test_bad_values_show_the_managers_reason_and_add_nothing(world: World) -> None:
    """A constraint like `=x` and a negative max RAM are the manager's to refuse: its reason
    shows below the form, which stays open; a max RAM that is no number is refused beside it."""
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        form = await open_form(pilot, app)
        error = form.query_one("#error-manager", Static)
        fill(form, name="delta", url="https://example.com/delta.git", on="room=lab =x")
        await submit(pilot, form)
        await until(pilot, lambda: "constraint '=x'" in text_of(error), "the constraint refusal")
        fill(form, on="room=lab", max_ram="-5")
        await submit(pilot, form)
        await until(pilot, lambda: "max-ram" in text_of(error), "the max RAM refusal")
        assert "constraint" not in text_of(error)
        fill(form, max_ram="lots")
        await submit(pilot, form)
        assert "max RAM is a number" in text_of(form.query_one("#error-max-ram", Static))
        assert text_of(error).strip() == "", "the manager's old refusal is cleared"
        assert isinstance(app.screen, AddProjectScreen), "the form stays open"
    async with world.ctl() as ctl:
        assert set(await ctl.status()) == set(URLS)

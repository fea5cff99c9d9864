"""`e`, the edit form, driven by the pilot against a real manager on loopback (`test_pilot`'s
world: three projects on protocol-simulated nodes). Every outcome is checked through the
manager's own `status`, not the screen alone."""

from __future__ import annotations

from textual.pilot import Pilot
from textual.widgets import Checkbox, Input, Static, TextArea

from syncopate.tui.app import SyncopateApp
from syncopate.tui.screens import EditProjectScreen
from tests.tui import test_pilot
from tests.tui.test_pilot import (
    URLS,
    World,
    app_for,
    loaded,
    select,
    text_of,
    until,
    until_manager,
)

world = test_pilot.world  # the fixture: three projects on two simulated nodes


async def open_form(pilot: Pilot[None], app: SyncopateApp, name: str) -> EditProjectScreen:
    await loaded(pilot, app)
    await select(pilot, app, "projects", name)
    await pilot.press("e")
    form: EditProjectScreen = await until(
        pilot,
        lambda: app.screen if isinstance(app.screen, EditProjectScreen) else None,
        "the edit form",
    )
    await pilot.pause()
    return form


async def submit(pilot: Pilot[None], form: EditProjectScreen, key: str, value: str) -> None:
    """Type `value` into a field and press Enter there (Enter in a field saves)."""
    field = form.query_one(f"#field-{key}", Input)
    field.value = value
    field.focus()
    await pilot.press("enter")


async def test_e_opens_the_form_prefilled(world: World) -> None:
    async with world.ctl() as ctl:
        await ctl.set_project("beta", command="python3 main.py", ref="v2", ram=64.0, env={"A": "1"})
        await ctl.set_project("beta", exclusive=True, env={"B": "x=y"})
        await ctl.set_project(
            "beta", on=["room=lab", "gpu"], stay=True, health_cmd="test -e ok", max_ram=96.5
        )
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.model.projects.get("beta", {}).get("stay"), "beta's change")
        form = await open_form(pilot, app, "beta")
        value = {key: form.query_one(f"#field-{key}", Input).value for key, _, _ in form.FIELDS}
        assert value == {
            "url": URLS["beta"],
            "ref": "v2",
            "command": "python3 main.py",
            "on": "room=lab gpu",
            "health-cmd": "test -e ok",
            "ram": "64",
            "disk": "0",
            "max-ram": "96.5",
            "grace": "60",
            "secrets": "",
        }
        assert form.query_one("#field-secrets", Input).password, "a secret is typed masked"
        assert form.query_one("#field-env", TextArea).text == "A=1\nB=x=y"
        assert form.query_one("#field-exclusive", Checkbox).value is True
        assert form.query_one("#field-stay", Checkbox).value is True
        assert app.focused is form.query_one("#field-command", Input)


async def test_saving_a_new_command_changes_only_that(world: World) -> None:
    before = await world.status("alpha")
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        form = await open_form(pilot, app, "alpha")
        form.query_one("#field-command", Input).value = "sh other.sh"
        form.query_one("#field-env", TextArea).load_text("GREETING=hi")
        await pilot.click("#save")
        await until(pilot, lambda: not isinstance(app.screen, EditProjectScreen), "form to close")

        async def changed() -> bool:
            return bool((await world.status("alpha"))["command"] == "sh other.sh")

        await until_manager(changed, "alpha's new command")
        after = await world.status("alpha")
        assert after["env"] == {"GREETING": "hi"}
        assert after["history"][-1]["fields"] == ["command", "env"], "only what changed is sent"
        for key in ("project-url", "ref", "ram", "disk", "exclusive", "persistent-variables"):
            assert after[key] == before[key], key
        assert after["restart"] == before["restart"] + 1, "one restart for the new command"


async def test_removing_an_env_line_unsets_it(world: World) -> None:
    async with world.ctl() as ctl:
        await ctl.set_project("gamma", env={"KEEP": "1", "DROP": "2"})
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.model.projects.get("gamma", {}).get("env"), "gamma's env")
        form = await open_form(pilot, app, "gamma")
        form.query_one("#field-env", TextArea).load_text("KEEP=1")
        await pilot.click("#save")
        await until(pilot, lambda: not isinstance(app.screen, EditProjectScreen), "form to close")

        async def unset() -> bool:
            return bool((await world.status("gamma"))["env"] == {"KEEP": "1"})

        await until_manager(unset, "DROP to be unset")


async def test_escape_changes_nothing(world: World) -> None:
    before = await world.status("alpha")
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        form = await open_form(pilot, app, "alpha")
        form.query_one("#field-command", Input).value = "sh never.sh"
        form.query_one("#field-ram", Input).value = "512"
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, EditProjectScreen), "form to close")
        await pilot.pause(0.1)
    assert await world.status("alpha") == before


async def test_a_bad_value_shows_the_managers_reason(world: World) -> None:
    before = await world.status("alpha")
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        form = await open_form(pilot, app, "alpha")
        form.query_one("#field-ref", Input).value = "-evil"
        await pilot.click("#save")
        error = form.query_one("#error-manager", Static)
        await until(pilot, lambda: "may not start with '-'" in text_of(error), "the refusal")
        assert isinstance(app.screen, EditProjectScreen), "the form stays open"
        form.query_one("#field-ram", Input).value = "lots"
        form.query_one("#field-ram", Input).focus()
        await pilot.press("enter")  # Enter in a field saves, as Save does
        assert "number of MB" in text_of(form.query_one("#error-ram", Static))
    assert await world.status("alpha") == before


async def test_a_secret_is_never_shown_even_in_a_refusal(world: World) -> None:
    """A secret goes out as `secrets`; whatever the manager answers (it may not know the field
    yet), the value is not on the screen."""
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        form = await open_form(pilot, app, "alpha")
        form.query_one("#field-secrets", Input).value = "TOKEN=hunter2-s3cret"
        form.query_one("#field-ref", Input).value = "-evil"  # refused, whatever secrets does
        await pilot.click("#save")
        error = form.query_one("#error-manager", Static)
        await until(pilot, lambda: text_of(error).strip(), "the refusal")
        shown = " ".join(text_of(w) for w in app.screen.query(Static))
        assert "hunter2-s3cret" not in shown
        assert "hunter2-s3cret" not in app.export_screenshot()


async def test_a_secret_alone_is_sent_and_never_shown(world: World) -> None:
    """The manager takes the secret and the form closes; the value is on no screen and in no
    answer, its name is shown with `***`."""
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        form = await open_form(pilot, app, "alpha")
        form.query_one("#field-secrets", Input).value = "TOKEN=hunter2-s3cret"
        await pilot.click("#save")
        await until(
            pilot,
            lambda: not isinstance(app.screen, EditProjectScreen),
            "the form to close once the manager took the secret",
        )
        assert "hunter2-s3cret" not in app.export_screenshot()
    status = await world.status("alpha")
    assert status["secrets"] == {"TOKEN": "***"}
    assert "hunter2-s3cret" not in str(status)


async def test_saving_the_placement_health_and_memory_fields(world: World) -> None:
    """Run on (spaces and commas), stay, health command, max RAM and grace reach the manager,
    and only they are sent."""
    before = await world.status("alpha")
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        form = await open_form(pilot, app, "alpha")
        form.query_one("#field-on", Input).value = "room=lab, gpu  zone!=cold"
        form.query_one("#field-health-cmd", Input).value = "curl -fs localhost:8080"
        form.query_one("#field-max-ram", Input).value = "300"
        form.query_one("#field-grace", Input).value = "20"
        form.query_one("#field-stay", Checkbox).value = True
        await pilot.click("#save")
        await until(pilot, lambda: not isinstance(app.screen, EditProjectScreen), "form to close")

        async def saved() -> bool:
            return bool((await world.status("alpha"))["on"])

        await until_manager(saved, "alpha's constraints")
    after = await world.status("alpha")
    assert after["on"] == ["room=lab", "gpu", "zone!=cold"]
    assert after["stay"] is True
    assert after["health"]["cmd"] == "curl -fs localhost:8080"
    assert after["max-ram"] == 300.0
    assert after["grace"] == 20.0
    assert after["history"][-1]["fields"] == [
        "constraints",
        "grace",
        "health_cmd",
        "max_ram",
        "stay",
    ], "only what changed is sent"
    for key in ("project-url", "ref", "command", "ram", "disk", "exclusive", "every-node"):
        assert after[key] == before[key], key


async def test_emptying_run_on_and_health_command_removes_them(world: World) -> None:
    async with world.ctl() as ctl:
        await ctl.set_project("gamma", on=["room=lab"], health_cmd="true", stay=True)
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.model.projects.get("gamma", {}).get("on"), "gamma's change")
        form = await open_form(pilot, app, "gamma")
        form.query_one("#field-on", Input).value = ""
        form.query_one("#field-health-cmd", Input).value = ""
        form.query_one("#field-stay", Checkbox).value = False
        await pilot.click("#save")
        await until(pilot, lambda: not isinstance(app.screen, EditProjectScreen), "form to close")

        async def removed() -> bool:
            return not (await world.status("gamma"))["on"]

        await until_manager(removed, "gamma's constraints to be removed")
    after = await world.status("gamma")
    assert after["health"] is None
    assert after["stay"] is False


async def test_bad_placement_values_show_the_managers_reason(world: World) -> None:
    """A constraint like `=x` and a negative grace or max RAM are the manager's to refuse: its
    reason shows in the form, which stays open, and nothing changes."""
    before = await world.status("alpha")
    app = app_for(world)
    async with app.run_test(size=(120, 40)) as pilot:
        form = await open_form(pilot, app, "alpha")
        error = form.query_one("#error-manager", Static)
        form.query_one("#field-on", Input).value = "room=lab =x"
        await pilot.click("#save")
        await until(pilot, lambda: "constraint '=x'" in text_of(error), "the constraint refusal")
        # Enter in a field saves, as Save does; no click on a button the longer refusal moved.
        form.query_one("#field-on", Input).value = "room=lab"
        await submit(pilot, form, "grace", "-1")
        await until(pilot, lambda: "grace" in text_of(error), "the grace refusal")
        form.query_one("#field-grace", Input).value = "60"
        await submit(pilot, form, "max-ram", "-5")
        await until(pilot, lambda: "max-ram" in text_of(error), "the max RAM refusal")
        assert isinstance(app.screen, EditProjectScreen), "the form stays open"
        await submit(pilot, form, "max-ram", "a lot")
        assert "max RAM is a number" in text_of(form.query_one("#error-max-ram", Static))
    assert await world.status("alpha") == before

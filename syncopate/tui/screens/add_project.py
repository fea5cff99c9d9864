"""The add-a-project form: each field checked as `project add` checks it, errors beside it.

The name, URL, sizes and variables are checked here, beside their fields; the DESIGN section 12
fields (run on, health command, max RAM) are checked by the manager only, whose refusal is shown
below the form: the form parses just what it needs to build the request (a number, a list).
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Static, TextArea

from syncopate import validate
from syncopate.errors import ConfigError
from syncopate.variables import parse_var

Submit = Callable[[dict[str, Any]], Awaitable[str | None]]


def parse_variables(text: str) -> dict[str, Any]:
    """`key=value` lines, each read as `project add --var` reads it; ValueError if bad."""
    result: dict[str, Any] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                key, value = parse_var(line.strip())
            except ConfigError:
                raise ValueError(f"line {number} is not key=value") from None
            result[key] = value
    return result


def parse_megabytes(text: str, what: str) -> float:
    try:
        value = float(text or 0)
    except ValueError:
        raise ValueError(f"{what} is a number of MB") from None
    if value < 0 or value != value or value == float("inf"):
        raise ValueError(f"{what} is a number of MB, 0 or more")
    return value


def parse_number(text: str, what: str, default: float) -> float:
    """A field's number (empty: `default`); ValueError unless finite. Its range is the
    manager's to judge (a negative one comes back as its refusal)."""
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{what} is a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{what} is a number")
    return value


def split_constraints(text: str) -> list[str]:
    """`run on` as typed: K=V, K!=V or K, separated by spaces or commas (the manager checks
    each one, as it checks `--on`)."""
    return [item for item in re.split(r"[\s,]+", text) if item]


class AddProjectScreen(ModalScreen[None]):
    """The add form: each field's error is shown beside it; the manager's refusal below."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    FIELDS = (
        ("name", "Name", "letters, digits, '.', '_', '-'"),
        ("url", "Git URL", "https://, git@host:path, file://"),
        ("ref", "Ref", "branch, tag or commit"),
        ("command", "Command", "else syncopate.toml, run.sh"),
        ("on", "Run on", "K=V K!=V K; empty: any node"),
        ("health-cmd", "Health cmd", "a command, exit 0 when well"),
        ("ram", "RAM MB", "0"),
        ("disk", "Disk MB", "0"),
        ("max-ram", "Max RAM MB", "restart above; 0: no limit"),
    )

    def __init__(self, submit: Submit) -> None:
        super().__init__()
        self.submit = submit

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog", classes="form"):
            yield Label("Add a project", id="title")
            with Grid(id="fields"):
                for key, label, hint in self.FIELDS:
                    yield Label(label)
                    yield Input(placeholder=hint, id=f"field-{key}")
                    yield Static("", id=f"error-{key}", classes="error")
            # Outside the grid: a grid row is as tall as its tallest cell's `auto` height.
            with Horizontal(id="vars-row"):
                yield Label("Variables")
                yield TextArea(id="field-vars")
            yield Static("", id="error-vars", classes="error")
            # Compact (one line each): with them the form fits 120x40 unscrolled.
            yield Checkbox("exclusive: never run two copies", id="field-exclusive", compact=True)
            yield Checkbox(
                "every node: one copy on each node that meets Run on",
                id="field-every-node",
                compact=True,
            )
            yield Static("", id="error-manager", classes="error")
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Add", id="add", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#field-vars", TextArea).border_subtitle = "key=value lines"
        self.query_one("#field-name", Input).focus()

    def value(self, key: str) -> str:
        return self.query_one(f"#field-{key}", Input).value.strip()

    def spec(self) -> dict[str, Any] | None:
        """The add request, or None after showing each bad field's error beside it."""
        errors: dict[str, str] = {}
        spec: dict[str, Any] = {}
        checks: dict[str, Callable[[], Any]] = {
            "name": lambda: validate.check_name(self.value("name"), "project"),
            "url": lambda: validate.check_git_url(self.value("url")),
            "ram": lambda: parse_megabytes(self.value("ram"), "RAM"),
            "disk": lambda: parse_megabytes(self.value("disk"), "disk"),
            "max-ram": lambda: parse_number(self.value("max-ram"), "max RAM", 0.0),
            "vars": lambda: parse_variables(self.query_one("#field-vars", TextArea).text),
        }
        for key, check in checks.items():
            try:
                spec[key] = check()
            except ValueError as exc:
                errors[key] = str(exc)
        for key in [k for k, _, _ in self.FIELDS] + ["vars", "manager"]:
            self.query_one(f"#error-{key}", Static).update(errors.get(key, ""))
        if errors:
            return None
        return {
            "name": spec["name"],
            "url": spec["url"],
            "initial_variables": spec["vars"],
            "ref": self.value("ref") or None,
            "command": self.value("command") or None,
            "ram": spec["ram"],
            "disk": spec["disk"],
            "exclusive": self.query_one("#field-exclusive", Checkbox).value,
            # Kebab-case, as on the wire: a refusal names the field as `--max-ram` does.
            "on": split_constraints(self.value("on")),
            "every-node": self.query_one("#field-every-node", Checkbox).value,
            "health-cmd": self.value("health-cmd") or None,
            "max-ram": spec["max-ram"],
        }

    @on(Button.Pressed, "#add")
    @on(Input.Submitted)
    def _add(self) -> None:
        spec = self.spec()
        if spec is not None:
            self._send(spec)

    @work(exclusive=True, exit_on_error=False)
    async def _send(self, spec: dict[str, Any]) -> None:
        self.query_one("#add", Button).disabled = True
        try:
            refused = await self.submit(spec)
        finally:
            self.query_one("#add", Button).disabled = False
        if refused:
            self.query_one("#error-manager", Static).update(f"the manager said: {refused}")
        else:
            self.dismiss(None)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)

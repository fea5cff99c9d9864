"""The edit form (`e`): a project's fields prefilled; Save sends only what changed (`set`).

The manager checks every value (DESIGN section 11) and its refusal is shown in the form; the
form checks only what it must to build the request (numbers, `NAME=value` lines). A secret is
typed into a masked input and never shown: not prefilled (the manager never gives one back),
not echoed in an error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Static, TextArea

from syncopate.errors import SyncopateError
from syncopate.tui.screens.add_project import parse_megabytes, parse_number, split_constraints

# Sends the changed fields (`set`); returns the manager's answer, raises its refusal.
Send = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def parse_env(text: str) -> dict[str, str]:
    """`NAME=value` lines as `project set --env` reads them (the value is everything after the
    first '=', as it is); ValueError naming the first bad line."""
    result: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, equals, value = line.partition("=")
        if not equals or not key.strip():
            raise ValueError(f"line {number} is not NAME=value")
        result[key.strip()] = value
    return result


def env_text(env: dict[str, Any]) -> str:
    return "\n".join(f"{key}={value}" for key, value in env.items())


def megabytes_text(value: Any) -> str:
    """A number as a field shows it (None: 0); for seconds too."""
    number = float(value or 0)
    return f"{number:g}"


def health_cmd_text(info: dict[str, Any]) -> str:
    """The project's health command as given with add or set ('' for none, or an HTTP check)."""
    health = info.get("health")
    return str(health.get("cmd") or "") if isinstance(health, dict) else ""


class EditProjectScreen(ModalScreen[None]):
    """The edit form for one project; each local error beside its field, the manager's below."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    FIELDS = (
        ("url", "Git URL", ""),
        ("ref", "Ref", "empty: the default branch"),
        ("command", "Command", "empty: syncopate.toml, run.sh"),
        ("on", "Run on", "K=V K!=V K; empty: any node"),
        ("health-cmd", "Health cmd", "empty: none"),
        ("ram", "RAM MB", "0"),
        ("disk", "Disk MB", "0"),
        ("max-ram", "Max RAM MB", "0: no limit"),
        ("grace", "Grace s", "60"),
        ("secrets", "Secret", "NAME=value, never shown"),
    )

    def __init__(self, name: str, info: dict[str, Any], send: Send) -> None:
        super().__init__()
        self.project = name
        self.info = info
        self.send = send
        self.before = {
            "url": str(info.get("project-url") or ""),
            "ref": str(info.get("ref") or ""),
            "command": str(info.get("command") or ""),
            "ram": megabytes_text(info.get("ram")),
            "disk": megabytes_text(info.get("disk")),
            "on": " ".join(str(c) for c in info.get("on") or []),
            "health-cmd": health_cmd_text(info),
            "max-ram": megabytes_text(info.get("max-ram")),
            "grace": megabytes_text(60.0 if info.get("grace") is None else info["grace"]),
            "secrets": "",
        }
        self.env_before = {str(k): str(v) for k, v in (info.get("env") or {}).items()}

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog", classes="form edit"):
            yield Label(f"Edit {self.project}", id="title")
            with Grid(id="fields"):
                for key, label, hint in self.FIELDS:
                    yield Label(label)
                    yield Input(
                        self.before[key],
                        placeholder=hint,
                        password=key == "secrets",
                        id=f"field-{key}",
                    )
                    yield Static("", id=f"error-{key}", classes="error")
            # Outside the grid: a grid row is as tall as its tallest cell's `auto` height.
            with Horizontal(id="vars-row"):
                yield Label("Env")
                yield TextArea(env_text(self.env_before), id="field-env")
            yield Static("", id="error-env", classes="error")
            # Compact (one line each), so that the form scrolls less in 80x24.
            yield Checkbox(
                "exclusive: never run two copies",
                bool(self.info.get("exclusive")),
                id="field-exclusive",
                compact=True,
            )
            yield Checkbox(
                "stay: never moved to balance the load",
                bool(self.info.get("stay")),
                id="field-stay",
                compact=True,
            )
            yield Static("", id="error-manager", classes="error")
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Save", id="save", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#field-env", TextArea).border_subtitle = "NAME=value lines"
        self.query_one("#field-command", Input).focus()

    def value(self, key: str) -> str:
        return self.query_one(f"#field-{key}", Input).value.strip()

    def changes(self) -> dict[str, Any] | None:
        """The `set` fields that differ from the project's, or None after showing each bad
        field's error beside it. Empty ref or command: back to the default, as `set` reads it;
        empty run on or health command: none. Max RAM and grace are only parsed here (a
        negative one is the manager's to refuse, as it refuses `set --grace -1`)."""
        errors: dict[str, str] = {}
        changes: dict[str, Any] = {}
        for key in ("url", "ref", "command", "health-cmd"):
            if self.value(key) != self.before[key]:
                changes[key] = self.value(key)
        on = split_constraints(self.value("on"))
        if on != split_constraints(self.before["on"]):
            changes["on"] = on  # [] removes every constraint
        for key, what in (("ram", "RAM"), ("disk", "disk")):
            try:
                number = parse_megabytes(self.value(key), what)
            except ValueError as exc:
                errors[key] = str(exc)
                continue
            if number != float(self.before[key]):
                changes[key] = number
        for key, what, default in (("max-ram", "max RAM", 0.0), ("grace", "grace", 60.0)):
            try:
                number = parse_number(self.value(key), what, default)
            except ValueError as exc:
                errors[key] = str(exc)
                continue
            if number != float(self.before[key]):
                changes[key] = number
        for key in ("exclusive", "stay"):
            checked = self.query_one(f"#field-{key}", Checkbox).value
            if checked != bool(self.info.get(key)):
                changes[key] = checked
        try:
            env = parse_env(self.query_one("#field-env", TextArea).text)
        except ValueError as exc:
            errors["env"] = str(exc)
        else:
            added = {k: v for k, v in env.items() if self.env_before.get(k) != v}
            gone = [k for k in self.env_before if k not in env]
            if added:
                changes["env"] = added
            if gone:
                changes["unset-env"] = gone
        secret = self.value("secrets")
        if secret:
            key, equals, value = secret.partition("=")
            if equals and key.strip():
                changes["secrets"] = {key.strip(): value}
            else:
                errors["secrets"] = "not NAME=value"  # the value itself is never echoed
        for key in [k for k, _, _ in self.FIELDS] + ["env", "manager"]:
            self.query_one(f"#error-{key}", Static).update(errors.get(key, ""))
        return None if errors else changes

    @on(Button.Pressed, "#save")
    @on(Input.Submitted)
    def _save(self) -> None:
        changes = self.changes()
        if changes == {}:
            self.notify("nothing changed", title=f"edit {self.project}")
            self.dismiss(None)
        elif changes is not None:
            self._send(changes)

    @work(exclusive=True, exit_on_error=False)
    async def _send(self, changes: dict[str, Any]) -> None:
        self.query_one("#save", Button).disabled = True
        try:
            refused = await self.refusal(changes)
        finally:
            self.query_one("#save", Button).disabled = False
        if refused:
            for value in (changes.get("secrets") or {}).values():
                if value:  # a refusal may quote what it was sent: the secret stays unseen
                    refused = refused.replace(value, "***")
            self.query_one("#error-manager", Static).update(f"the manager said: {refused}")
        else:
            self.dismiss(None)

    async def refusal(self, changes: dict[str, Any]) -> str | None:
        """Send the changes; the reason they were not (all) taken, or None after a toast."""
        try:
            answer = await self.send(changes)
        except SyncopateError as exc:
            return str(exc)
        # A manager that does not know `secrets` ignores it (unknown fields are): say so,
        # rather than let the user believe the secret is stored.
        taken = [str(field) for field in answer.get("changed") or []]
        if "secrets" in changes and not any(f.startswith("secret") for f in taken):
            return "the other changes are saved, but this manager did not take the secret"
        info = answer.get("request-information") or f"changed {self.project}"
        self.notify(str(info), title=f"edit {self.project}")
        return None

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)

"""The TUI's dialogs: confirm, add a project, a project's live output, a command, help."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, RichLog, Static, TextArea

from syncopate import validate
from syncopate.client import ManagerClient
from syncopate.command_results import exit_status, wait_answered
from syncopate.errors import ConfigError, SyncopateError
from syncopate.feed import FeedDropped, NumberedLines
from syncopate.variables import parse_var

Submit = Callable[[dict[str, Any]], Awaitable[str | None]]
RECONNECT_DELAYS = (1.0,)  # a person is watching: retry soon, and as often


class ConfirmScreen(ModalScreen[bool]):
    """A question with Cancel (focused) and a confirm button; Esc cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, body: str, confirm: str) -> None:
        super().__init__()
        self.title_text, self.body, self.confirm = title, body, confirm

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="confirm"):
            yield Label(self.title_text, id="title")
            yield Static(self.body, id="body")
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button(self.confirm, id="confirm", variant="error")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    @on(Button.Pressed, "#confirm")
    def _confirm(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(False)


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


class AddProjectScreen(ModalScreen[None]):
    """The add form: each field's error is shown beside it; the manager's refusal below."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    FIELDS = (
        ("name", "Name", "letters, digits, '.', '_', '-'"),
        ("url", "Git URL", "https://, git@host:path, file://"),
        ("ref", "Ref", "branch, tag or commit"),
        ("command", "Command", "else syncopate.toml, run.sh"),
        ("ram", "RAM MB", "0"),
        ("disk", "Disk MB", "0"),
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
            yield Checkbox("exclusive: never run two copies", id="field-exclusive")
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


class LogsScreen(ModalScreen[None]):
    """A project's kept output, then its new lines as they come (like `logs --follow`)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("q", "close", "Close", show=False),
    ]

    def __init__(self, client: ManagerClient, project: str) -> None:
        super().__init__()
        self.client, self.project = client, project
        self.seen = NumberedLines()

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="logs"):
            yield Label(f"output of {self.project} — Esc closes", id="title")
            yield RichLog(id="log", max_lines=5000, wrap=False)
            yield Static("", id="state")

    def on_mount(self) -> None:
        self.follow()

    def take(self, seq: int, lines: list[str]) -> None:
        """Write each numbered line once, in order."""
        log = self.query_one("#log", RichLog)
        skipped, new = self.seen.take(seq, lines)
        if skipped:
            log.write(Text(f"… {skipped} line(s) no longer kept", style="dim"))
        for line in new:
            log.write(Text(line))

    @work(exclusive=True, exit_on_error=False)
    async def follow(self) -> None:
        state = self.query_one("#state", Static)

        async def show_kept(snapshot: dict[str, Any]) -> None:
            answer = await self.client.logs(self.project, 200)
            self.take(int(answer.get("seq") or 0), list(answer.get("lines") or ()))
            state.update(Text(f"following (on {answer.get('node') or 'no node'})", "green"))

        feed = self.client.follow_events(
            [self.project], on_connect=show_kept, delays=RECONNECT_DELAYS
        )
        async with contextlib.aclosing(feed):
            try:
                async for message in feed:
                    if isinstance(message, FeedDropped):
                        state.update(Text(f"disconnected: {message.error}; retrying", "red"))
                    elif message.get("type") == "logs" and message.get("project") == self.project:
                        self.take(int(message["seq"]), list(message["lines"]))
                    elif (message.get("projects") or {}).get(self.project, 1) is None:
                        state.update(Text(f"{self.project} was removed", "yellow"))
                        return
            except SyncopateError as exc:
                state.update(Text(str(exc), "red"))

    def action_close(self) -> None:
        self.dismiss(None)


class CommandScreen(ModalScreen[None]):
    """Send a program to a node and watch its response arrive."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("ctrl+s", "send", "Send"),
    ]

    def __init__(self, client: ManagerClient, node: str) -> None:
        super().__init__()
        self.client, self.node = client, node

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="command"):
            yield Label(f"Send a program to {self.node}", id="title")
            yield TextArea("print('hello from', __import__('socket').gethostname())", id="code")
            with Horizontal(id="options"):
                yield Checkbox("sh instead of python3", id="sh")
                yield Label("timeout s")
                yield Input("30", id="timeout")
            yield Static("", id="error-timeout", classes="error")
            with Horizontal(id="buttons"):
                yield Button("Close", id="close")
                yield Button("Send", id="send", variant="primary")
            yield Static("", id="state")
            yield RichLog(id="response", wrap=True)

    def on_mount(self) -> None:
        self.query_one("#code", TextArea).focus()

    @on(Button.Pressed, "#send")
    def action_send(self) -> None:
        try:
            timeout = float(self.query_one("#timeout", Input).value)
            if not 0 < timeout <= 86400:
                raise ValueError
        except ValueError:
            self.query_one("#error-timeout", Static).update("timeout: seconds, above 0")
            return
        self.query_one("#error-timeout", Static).update("")
        code = self.query_one("#code", TextArea).text
        interpreter = "sh" if self.query_one("#sh", Checkbox).value else "python"
        self._run(code, interpreter, timeout)

    @work(exclusive=True, exit_on_error=False)
    async def _run(self, code: str, interpreter: str, timeout: float) -> None:
        state = self.query_one("#state", Static)
        response = self.query_one("#response", RichLog)
        response.clear()
        try:
            sent = await self.client.command_send(
                [self.node], code, interpreter=interpreter, timeout=timeout
            )
            command_id = int(next(iter(sent)))
            state.update(Text(f"command {command_id} sent; waiting for {self.node}…", "cyan"))
            (info,) = await wait_answered(self.client, [command_id])
        except SyncopateError as exc:
            state.update(Text(str(exc), "red"))
            return
        status = exit_status(info)
        colour = "green" if status == 0 else "red"
        summary = f"command {command_id} {info.get('state')}: exit {status}"
        if info.get("duration") is not None:
            summary += f" after {float(info['duration']):.2f}s"
        if info.get("reason"):
            summary += f" — {info['reason']}"
        state.update(Text(summary, colour))
        response.write(Text(str(info.get("response") or "")))

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self.dismiss(None)


class HelpScreen(ModalScreen[None]):
    """Every key and what it does."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("question_mark", "close", "Close", show=False),
        Binding("q", "close", "Close", show=False),
    ]

    def __init__(self, bindings: Iterable[BindingType]) -> None:
        super().__init__()
        self.bindings = [b for b in bindings if isinstance(b, Binding) and b.show]

    def compose(self) -> ComposeResult:
        text = Text()
        for binding in self.bindings:
            key = {"slash": "/", "question_mark": "?", "colon": ":", "escape": "Esc"}.get(
                binding.key, binding.key
            )
            text.append(f"{key:>8}  ", style="bold")
            text.append(f"{binding.description:<9}", style="bold")
            text.append(f"{binding.tooltip}\n")
        text.append(f"{'Tab':>8}  ", style="bold")
        text.append(f"{'':<9}move between the nodes and projects tables\n")
        text.append(f"{'ctrl+p :':>8}  ", style="bold")
        text.append(f"{'Palette':<9}", style="bold")
        text.append("every action, and go to a node or project\n")
        text.append(f"{'Esc':>8}  ", style="bold")
        text.append(f"{'':<9}clear the filter; close a dialog\n")
        text.append("\nClick a column's header to sort by it (again: reverse).", style="dim")
        with Vertical(id="dialog", classes="help"):
            yield Label("Keys — Esc closes", id="title")
            yield Static(text)

    def action_close(self) -> None:
        self.dismiss(None)

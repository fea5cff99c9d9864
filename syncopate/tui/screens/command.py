"""Send a program to a node and watch its response arrive (like `command send --wait`)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, RichLog, Static, TextArea

from syncopate.client import ManagerClient
from syncopate.command_results import exit_status, wait_answered
from syncopate.errors import SyncopateError


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

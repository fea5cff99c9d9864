"""A project's output, live: the kept lines, then new ones as they come (like `logs -f`)."""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, RichLog, Static

from syncopate.client import ManagerClient
from syncopate.errors import SyncopateError
from syncopate.feed import FeedDropped, NumberedLines

RECONNECT_DELAYS = (1.0,)  # a person is watching: retry soon, and as often


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

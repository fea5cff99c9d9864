"""A project's output, live: the kept lines, then new ones as they come (like `logs -f`).

Each line starts with the time it was produced (the manager's `times`, in this machine's zone).
`/` filters the lines shown to those containing a text (Esc clears it); `p` or space pauses
following: new lines are kept but not shown, the title counts them, and resuming shows them.
"""

from __future__ import annotations

import contextlib
from collections import deque
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, RichLog, Static

from syncopate.client import ManagerClient
from syncopate.errors import SyncopateError
from syncopate.feed import FeedDropped, NumberedLines
from syncopate.render import local_time

RECONNECT_DELAYS = (1.0,)  # a person is watching: retry soon, and as often
KEPT = 5000  # lines kept to filter again, as many as the log shows
KEYS = "p pause/resume · / filter · Esc close"


class LogsScreen(ModalScreen[None]):
    """A project's kept output, then its new lines as they come (like `logs --follow`)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Close"),
        Binding("q", "close", "Close", show=False),
        Binding("slash", "filter", "Filter"),
        Binding("p", "pause", "Pause"),
        Binding("space", "pause", "Pause", show=False),
    ]

    def __init__(self, client: ManagerClient, project: str) -> None:
        super().__init__()
        self.client, self.project = client, project
        self.seen = NumberedLines()
        self.kept: deque[Text] = deque(maxlen=KEPT)  # every line taken, shown or not
        self.filter = ""
        self.paused = False
        self.waiting = 0  # lines that came (and pass the filter) while paused
        self.node: str | None = None  # where the output comes from, once the feed is up
        self.connected = False  # the feed is up: the state line says following or paused

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="logs"):
            yield Label(self.title_text(), id="title")
            yield RichLog(id="log", max_lines=KEPT, wrap=False)
            yield Input(placeholder="show lines containing… — Enter keeps, Esc clears", id="grep")
            with Horizontal(id="log-foot"):
                yield Static("", id="state")
                yield Static(KEYS, id="log-keys")

    def on_mount(self) -> None:
        self.query_one("#grep", Input).display = False
        self.follow()

    def title_text(self) -> Text:
        """`output of NAME`, what is filtered and whether it is paused (the keys are below)."""
        title = Text(f"output of {self.project}")
        if self.filter:
            title.append(f" — lines with “{self.filter}”", style="bold yellow")
        if self.paused:
            title.append(f" — paused, {self.waiting} new line(s) wait", style="bold yellow")
        return title

    def show_title(self) -> None:
        self.query_one("#title", Label).update(self.title_text())

    def show_following(self) -> None:
        """The state line while the feed is up: following, or paused (as the title says)."""
        where = f"(on {self.node or 'no node'})"
        if self.paused:
            text = Text(f"paused {where}", "yellow")
        else:
            text = Text(f"following {where}", "green")
        self.query_one("#state", Static).update(text)

    def passes(self, line: Text) -> bool:
        # What the line shows, its time included: `/12:01` finds the lines of that minute.
        return self.filter.lower() in line.plain.lower()

    def take(self, seq: int, lines: list[str], times: list[str | None] | None = None) -> None:
        """Keep each numbered line once, in order; show it unless paused or filtered out.

        `times` go with `lines` one for one (a manager that sends none leaves them blank)."""
        skipped, new = self.seen.take(seq, lines)
        stamps = times[len(lines) - len(new) :] if times and len(times) == len(lines) else []
        texts = [Text(f"… {skipped} line(s) no longer kept", style="dim")] if skipped else []
        for number, line in enumerate(new):
            clock = local_time(stamps[number] if stamps else None)[-8:]  # HH:MM:SS
            texts.append(Text.assemble((clock + " ", "dim"), line))
        log = self.query_one("#log", RichLog)
        for text in texts:
            self.kept.append(text)
            if not self.passes(text):
                continue
            if self.paused:
                self.waiting += 1
            else:
                log.write(text)
        if self.paused and texts:
            self.show_title()

    def refill(self) -> None:
        """Show the kept lines again through the filter (those waiting stay hidden)."""
        log = self.query_one("#log", RichLog)
        log.clear()
        shown = [line for line in self.kept if self.passes(line)]
        for text in shown[: max(0, len(shown) - self.waiting)]:
            log.write(text, scroll_end=False)
        if not self.paused:
            log.scroll_end(animate=False)

    def set_filter(self, text: str) -> None:
        if text == self.filter:
            return
        self.filter = text
        self.waiting = 0  # the lines held back are shown (those that pass) from now
        self.refill()
        self.show_title()

    @on(Input.Changed, "#grep")
    def _typed(self, event: Input.Changed) -> None:
        self.set_filter(event.value)

    @on(Input.Submitted, "#grep")
    def _kept(self, event: Input.Submitted) -> None:
        self.set_filter(event.value)
        self.close_grep()

    def close_grep(self) -> None:
        self.query_one("#grep", Input).display = False
        self.query_one("#log", RichLog).focus()

    @work(exclusive=True, exit_on_error=False)
    async def follow(self) -> None:
        state = self.query_one("#state", Static)

        async def show_kept(snapshot: dict[str, Any]) -> None:
            answer = await self.client.logs(self.project, 200)
            lines, times = list(answer.get("lines") or ()), list(answer.get("times") or ())
            self.take(int(answer.get("seq") or 0), lines, times)
            self.node = str(answer.get("node") or "") or None
            self.connected = True
            self.show_following()

        feed = self.client.follow_events(
            [self.project], on_connect=show_kept, delays=RECONNECT_DELAYS
        )
        async with contextlib.aclosing(feed):
            try:
                async for message in feed:
                    if isinstance(message, FeedDropped):
                        self.connected = False  # pausing must not hide this line
                        state.update(Text(f"disconnected: {message.error}; retrying", "red"))
                    elif message.get("type") == "logs" and message.get("project") == self.project:
                        times = list(message.get("times") or ())
                        self.take(int(message["seq"]), list(message["lines"]), times)
                    elif (message.get("projects") or {}).get(self.project, 1) is None:
                        self.connected = False
                        state.update(Text(f"{self.project} was removed", "yellow"))
                        return
            except SyncopateError as exc:
                self.connected = False
                state.update(Text(str(exc), "red"))

    def action_filter(self) -> None:
        grep = self.query_one("#grep", Input)
        grep.display = True
        grep.value = self.filter
        grep.focus()

    def action_pause(self) -> None:
        """Pause following, or resume it: the lines that waited show, and the log follows."""
        self.paused = not self.paused
        if not self.paused and self.waiting:
            shown = [line for line in self.kept if self.passes(line)]
            log = self.query_one("#log", RichLog)
            for text in shown[max(0, len(shown) - self.waiting) :]:
                log.write(text, scroll_end=False)
            self.waiting = 0
        if not self.paused:
            self.query_one("#log", RichLog).scroll_end(animate=False)
        self.show_title()
        if self.connected:  # else the line says why nothing comes, paused or not
            self.show_following()

    def action_back(self) -> None:
        """Esc: clear the filter first (and close its line); with none, close the screen."""
        if self.filter or self.query_one("#grep", Input).display:
            self.query_one("#grep", Input).value = ""
            self.set_filter("")
            self.close_grep()
            return
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)

"""Enter's full-screen detail of the selected project or node, live, scrolling; Esc returns.

It covers the main screen, which stays as it was underneath: Esc finds the same row selected.
The app hands it each batch of changes (`changed`); it draws again when they touch what it
shows. A project's last output lines come from the manager's kept log (`client.logs`), fetched
again when the project changes; until they arrive, the lines of its last report stand in.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from syncopate.client import ManagerClient
from syncopate.errors import SyncopateError
from syncopate.render import local_time, project_status, status_text
from syncopate.tui.detail_text import full_detail
from syncopate.tui.model import Delta, FleetModel
from syncopate.tui.widgets.key_footer import KeyFooter

OUTPUT_LINES = 20  # the last output lines shown; `l` follows all of them
AGES_REFRESH = 5.0  # seconds between redraws of the "ago" texts


class DetailScreen(ModalScreen[None]):
    """Everything about one project or node (`kind` is `projects` or `nodes`)."""

    DEFAULT_CSS = """
    DetailScreen {
        align: left top;
        background: $background;
    }
    DetailScreen #detail-title {
        height: 1;
        width: 100%;
        background: $panel;
        text-style: bold;
    }
    DetailScreen #detail-scroll {
        height: 1fr;
        padding: 0 1;
        scrollbar-size-vertical: 1;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back", tooltip="back to the tables, the same row selected"),
        Binding("q", "close", "Back", show=False),
        Binding("j", "scroll('down')", "Down", key_display="j ↓"),
        Binding("k", "scroll('up')", "Up", key_display="k ↑"),
        Binding("down", "scroll('down')", "Down", show=False),
        Binding("up", "scroll('up')", "Up", show=False),
        Binding("pagedown", "scroll('page_down')", "Page", key_display="PgDn PgUp"),
        Binding("pageup", "scroll('page_up')", "Page up", show=False),
        Binding("space", "scroll('page_down')", "Page", show=False),
        Binding("home", "scroll('home')", "Top", show=False),
        Binding("end", "scroll('end')", "End", show=False),
        Binding("g", "scroll('home')", "Top", show=False),
        Binding("G", "scroll('end')", "End", show=False),
    ]

    def __init__(
        self,
        model: FleetModel,
        client: ManagerClient,
        clock: Callable[[], datetime],
        kind: str,
        name: str,
    ) -> None:
        super().__init__()
        self.model, self.client, self.clock = model, client, clock
        self.kind, self.item = kind, name  # (`name` is the widget's own)
        self.output: list[str] | None = None  # the manager's kept lines, once fetched

    def compose(self) -> ComposeResult:
        yield Static(id="detail-title")
        scroll = VerticalScroll(id="detail-scroll")
        scroll.can_focus = False  # the screen's keys scroll it, whatever has the focus
        with scroll:
            yield Static(id="detail-body")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.show()
        self.fetch_output()
        self.set_interval(AGES_REFRESH, self.show)

    def title_text(self) -> Text:
        what = "project" if self.kind == "projects" else "node"
        title = Text(f" {what} {self.item}  ")
        info = (self.model.projects if self.kind == "projects" else self.model.nodes).get(self.item)
        if info is None:
            title.append("gone", style="bold yellow")
        elif self.kind == "projects":
            title.append_text(project_status(info))
        else:
            title.append_text(status_text(info.get("status")))
        title.append("  — Esc returns", style="dim")
        return title

    def show(self) -> None:
        """Draw the detail again from the model (the scroll position stays)."""
        self.query_one("#detail-title", Static).update(self.title_text())
        body = full_detail(self.model, self.kind, self.item, self.output, self.clock())
        self.query_one("#detail-body", Static).update(body)

    def changed(self, delta: Delta) -> None:
        """A batch of changes was applied to the model: draw again if it touches this detail
        (a node's detail also shows its projects and commands)."""
        if self.kind == "projects":
            touched = delta.full or any(
                self.item in names for names in (delta.changed["projects"], delta.added["projects"])
            )
            gone = self.item in delta.removed["projects"]
            if touched:
                self.fetch_output()
            if touched or gone:
                self.show()
        else:
            placed = set((self.model.nodes.get(self.item) or {}).get("projects") or ())
            # Of the projects, only its own redraw it: in a large fleet one changes every batch.
            if (
                delta.full
                or delta.touches("nodes")
                or delta.touches("commands")
                or placed & delta.changed["projects"]
            ):
                self.show()

    @work(exclusive=True, group="detail-output", exit_on_error=False)
    async def fetch_output(self) -> None:
        """The project's last kept output lines; on failure the report's lines stay shown."""
        if self.kind != "projects" or self.item not in self.model.projects:
            return
        try:
            answer = await self.client.logs(self.item, OUTPUT_LINES)
        except SyncopateError:
            return  # e.g. a copy of an every-node project: its report's lines are shown
        lines = [str(line) for line in answer.get("lines") or ()]
        times = list(answer.get("times") or ())
        if len(times) == len(lines):  # HH:MM:SS first, as in the logs view
            lines = [f"{local_time(t)[-8:]} {line}" for t, line in zip(times, lines, strict=True)]
        self.output = lines
        self.show()

    def action_scroll(self, where: str) -> None:
        scroll = self.query_one("#detail-scroll", VerticalScroll)
        {
            "down": scroll.scroll_down,
            "up": scroll.scroll_up,
            "page_down": scroll.scroll_page_down,
            "page_up": scroll.scroll_page_up,
            "home": scroll.scroll_home,
            "end": scroll.scroll_end,
        }[where](animate=False)

    def action_close(self) -> None:
        self.dismiss(None)

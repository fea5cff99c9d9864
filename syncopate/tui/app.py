"""The Textual controller's shell: its widgets, the keys, the /events feed and the actions.

The widgets (`tui/widgets/`: the status bar, the two fleet tables, the detail pane, the filter
box) each show one part; the dialogs are in `tui/screens/`. A worker follows the manager's
/events feed: the snapshot fills the tables, each batch of changes updates only the rows (and
in them only the cells) that changed, so the cursor and the scroll stay where they are. When
the feed drops, the header says so and the worker reconnects with backoff; the snapshot that
follows refreshes everything. Every action runs in a worker and reports its result as a toast:
the manager's own words on success and on refusal.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from textual import events, on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import DataTable

from syncopate.client import ManagerClient
from syncopate.errors import SyncopateError
from syncopate.feed import FeedDropped
from syncopate.tui import node_actions, open_screens
from syncopate.tui.model import FleetModel
from syncopate.tui.palette import palette_commands
from syncopate.tui.screens import (
    CommandScreen,
    ConfirmScreen,
    DetailScreen,
    HelpScreen,
    LogsScreen,
    remove_question,
    reset_question,
)
from syncopate.tui.toasts import FewToastsApp
from syncopate.tui.widgets.detail_pane import DetailPane
from syncopate.tui.widgets.filter_box import FilterBox
from syncopate.tui.widgets.fleet_table import FleetTable
from syncopate.tui.widgets.key_footer import KeyFooter
from syncopate.tui.widgets.status_bar import StatusBar, drop_text, token_refused

Clock = Callable[[], datetime]
NODES_REFRESH = 5.0  # seconds: node contact times are not pushed on /events
AGES_REFRESH = 5.0  # seconds between refreshes of the "ago" cells
KINDS = ("nodes", "projects")


def utc_now() -> datetime:
    return datetime.now(UTC)


class SyncopateApp(FewToastsApp):
    """`syncopate tui`: the fleet, live, with a key for every action."""

    CSS_PATH = "syncopate.tcss"
    TITLE = "Syncopate"
    BINDINGS: ClassVar[list[BindingType]] = [
        # The footer orders these by its own PRIORITY (widgets/key_footer.py); `?` lists them.
        Binding("question_mark", "help", "Help", tooltip="this list of keys"),
        Binding("enter", "detail", "Detail", tooltip="all of the selected row", priority=True),
        Binding("s", "start", "Start", tooltip="start the selected project"),
        Binding("x", "stop", "Stop", tooltip="stop it (it keeps its checkout and variables)"),
        Binding("r", "restart", "Restart", tooltip="restart its process"),
        Binding(
            "R", "reset", "Reset", tooltip="reset its variables to their initial values (asks)"
        ),
        Binding("a", "add", "Add", tooltip="add a project (a form)"),
        Binding("e", "edit", "Edit", tooltip="change the selected project in place (a form)"),
        Binding("d", "remove", "Remove", tooltip="remove the selected project (asks)"),
        Binding("slash", "filter", "Filter", tooltip="filter both tables by name, node or status"),
        Binding("l", "logs", "Logs", tooltip="the selected project's output, live"),
        Binding(
            "c", "command", "Command", tooltip="send a program to the selected node and watch it"
        ),
        Binding("D", "drain", "Drain", tooltip="drain the selected node: its projects move (asks)"),
        Binding("u", "undrain", "Undrain", tooltip="let the drained node take projects (asks)"),
        Binding("F", "forget", "Forget", tooltip="forget the selected dead node for good (asks)"),
        Binding("q", "quit", "Quit", tooltip="quit"),
        Binding("ctrl+c", "quit", "Quit", show=False),
        # Both keys, explicitly: Textual adds its ctrl+p only when no binding opens the palette.
        Binding("ctrl+p", "command_palette", "Palette", show=False, priority=True),
        Binding("colon", "command_palette", "Palette", show=False),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(
        self,
        url: str,
        token: str,
        *,
        ca_file: str | None = None,
        fingerprint: str | None = None,
        live: bool = True,
        clock: Clock = utc_now,
        notes: Sequence[str] = (),  # lines atop `?`, open from the start (the demo's tokens)
    ) -> None:
        super().__init__()
        self.notes = list(notes)
        self.url = url
        self.client = ManagerClient(url, token, ca_file=ca_file, fingerprint=fingerprint)
        self.live = live
        self.clock = clock
        self.model = FleetModel()
        self.connection = "connecting…"
        self.connected = False
        self.selected: tuple[str, str] | None = None  # (kind, name) of the row the keys act on

    # layout -----------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield StatusBar(id="bar")
        for kind in KINDS:
            yield FleetTable(kind, self.model, self.clock)
        yield DetailPane(id="detail-pane")
        yield FilterBox(self.model, self._set_filter, self._close_filter)
        yield KeyFooter()

    def table(self, kind: str) -> FleetTable:
        return self.query_one(f"#{kind}", FleetTable)

    def on_mount(self) -> None:
        for kind in KINDS:
            self.table(kind).add_kind_columns()
        self.table("projects").focus()
        self.refresh_bar()
        self.show_detail()
        if self.notes:
            self.action_help()
        if self.live:
            self.follow()
            # Contact times first, then the ages: else a stale contact shows a moment older.
            self.set_interval(NODES_REFRESH, self.refresh_nodes)
        else:
            self.set_interval(AGES_REFRESH, self.refresh_ages)

    async def on_unmount(self) -> None:
        await self.client.close()

    # the feed ---------------------------------------------------------------------------------
    @work(exclusive=True, group="feed", exit_on_error=False)
    async def follow(self) -> None:
        """Follow /events until the app ends; reconnect with backoff when it drops."""
        feed = self.client.follow_events(retry=(SyncopateError,))
        async with contextlib.aclosing(feed):
            async for message in feed:
                if isinstance(message, FeedDropped):
                    if self.connected:  # grey the tables: they show the last known state
                        self.set_class(True, "-stale")
                    self.set_connection(False, drop_text(message))
                    if token_refused(message):
                        return
                    continue
                if message.get("type") == "snapshot":
                    self.set_class(False, "-stale")
                    self.set_connection(True, "connected")
                self.apply(message)

    def set_connection(self, connected: bool, text: str) -> None:
        self.connected = connected
        self.connection = text
        self.refresh_bar()

    async def refresh_nodes(self) -> None:
        """Fetch the node table: contact times change on every poll, and are not pushed."""
        if self.connected:
            try:
                nodes = await self.client.nodes()
            except SyncopateError:
                nodes = {}
            changed = {n: info for n, info in nodes.items() if self.model.nodes.get(n) != info}
            if changed:
                self.apply({"type": "changes", "nodes": changed})
        self.refresh_ages()

    def refresh_ages(self) -> None:
        """The "ago" cells age with the clock: only they are made again, and set if changed."""
        now = self.clock()
        try:
            tables = [self.table(kind) for kind in KINDS]
        except NoMatches:
            return  # the app is ending: its timer fired after the tables were taken down
        for table in tables:
            table.refresh_ages(now)

    # applying changes -------------------------------------------------------------------------
    def apply(self, message: dict[str, Any]) -> None:
        """Apply one /events message to the model and to the rows it touched."""
        delta = self.model.apply(message)
        for kind in KINDS:
            if not delta.touches(kind):
                continue
            table = self.table(kind)
            names = delta.changed[kind]
            refilter = any(self.model.matches(kind, n) != (n in table.cells) for n in names)
            if delta.full or delta.added[kind] or delta.removed[kind] or refilter:
                self.rebuild(kind)
            else:
                for name in names:
                    table.update_row(name)
                table.keep_sorted()  # the chosen sort holds when the values change
        if delta.touches("projects") or delta.touches("nodes"):
            self.refresh_bar()  # its counts walk every project: not for a command's change
        if self.selected is not None:
            kind, name = self.selected
            touched = (
                delta.full
                or name in delta.changed[kind]
                or name in delta.removed[kind]
                or (kind == "nodes" and delta.touches("commands"))
            )
            if touched:
                self.show_detail()
        for screen in self.screen_stack:  # a full-screen detail keeps up, live
            if isinstance(screen, DetailScreen):
                screen.changed(delta)

    def rebuild(self, kind: str) -> None:
        """Fill a table again; when the selected row went, select the one the cursor is on."""
        table = self.table(kind)
        gone = table.rebuild()
        if self.selected is not None and self.selected[0] == kind and gone:
            now_on = table.cursor_name()
            self.selected = (kind, now_on) if now_on else None
            self.show_detail()

    # the header and the detail ----------------------------------------------------------------
    def refresh_bar(self) -> None:
        bar = self.query_one(StatusBar)
        bar.show(self.model, self.url, self.connected, self.connection, self.has_class("-stale"))

    def show_detail(self) -> None:
        self.query_one(DetailPane).show(self.model, self.selected, self.clock())

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.has_focus and event.row_key.value is not None:
            self.selected = (str(event.data_table.id), str(event.row_key.value))
            self.show_detail()

    @on(DataTable.HeaderSelected)
    def _sort_by(self, event: DataTable.HeaderSelected) -> None:
        self.table(str(event.data_table.id)).sort_on(str(event.column_key.value))

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        widget = event.widget
        if isinstance(widget, FleetTable):
            name = widget.cursor_name()
            if name is not None:
                self.selected = (widget.kind, name)
                self.show_detail()

    # what the keys act on ---------------------------------------------------------------------
    def selected_project(self, whole: bool = False) -> str | None:
        """The selected project's row (`whole`: a copy's row means its every-node project)."""
        if self.selected and self.selected[0] == "projects":
            name = self.selected[1]
            parent = self.model.projects.get(name, {}).get("copy-of") if whole else None
            return str(parent or name)
        self.notify("select a project first (Tab moves between the tables)", severity="warning")
        return None

    def selected_node(self) -> str | None:
        """The selected node, or the node of the selected project."""
        if self.selected and self.selected[0] == "nodes":
            return self.selected[1]
        if self.selected and self.selected[0] == "projects":
            node = self.model.projects.get(self.selected[1], {}).get("node")
            if node:
                return str(node)
        self.notify("select a node first (Tab moves between the tables)", severity="warning")
        return None

    def act(self, what: str, call: Callable[[ManagerClient], Awaitable[dict[str, Any]]]) -> None:
        """Run one manager call in a worker; its result (or the refusal) becomes a toast."""

        async def run() -> None:
            try:
                answer = await call(self.client)
            except SyncopateError as exc:
                self.notify(str(exc), title=f"{what} failed", severity="error", timeout=8)
                return
            self.notify(str(answer.get("request-information") or what), title=what)

        self.run_worker(run(), group="actions", exit_on_error=False)

    # actions ----------------------------------------------------------------------------------
    def action_start(self) -> None:
        if name := self.selected_project():
            self.act(f"start {name}", lambda c: c.start([name]))

    def action_stop(self) -> None:
        if name := self.selected_project():
            self.act(f"stop {name}", lambda c: c.stop([name]))

    def action_restart(self) -> None:
        if name := self.selected_project():
            self.act(f"restart {name}", lambda c: c.restart([name]))

    def action_reset(self) -> None:
        if name := self.selected_project():
            info = self.model.projects.get(name, {})
            self.confirm_then_act(
                "Reset", name, reset_question(name, info), lambda c: c.reset([name])
            )

    def action_remove(self) -> None:
        if name := self.selected_project(whole=True):
            info = self.model.projects.get(name, {})
            url = str(info.get("project-url") or "")
            question = remove_question(name, info)
            self.confirm_then_act("Remove", name, question, lambda c: c.remove(name, url))

    def action_drain(self) -> None:
        node_actions.drain(self)

    def action_undrain(self) -> None:
        node_actions.undrain(self)

    def action_forget(self) -> None:
        node_actions.forget(self)

    def confirm_then_act(
        self, verb: str, name: str, question: str, call: Callable[[ManagerClient], Awaitable[Any]]
    ) -> None:
        """Ask first (`Verb name?`, Cancel focused); on yes, run the call as `act` does."""

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.act(f"{verb.lower()} {name}", call)

        self.push_screen(ConfirmScreen(f"{verb} {name}?", question, verb), confirmed)

    def action_add(self) -> None:
        open_screens.add(self)

    def action_edit(self) -> None:
        open_screens.edit(self)

    def action_detail(self) -> None:
        open_screens.detail(self)

    def action_logs(self) -> None:
        if name := self.selected_project():
            self.push_screen(LogsScreen(self.client, name))

    def action_command(self) -> None:
        if node := self.selected_node():
            self.push_screen(CommandScreen(self.client, node))

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.BINDINGS, self.notes))

    def action_filter(self) -> None:
        self.query_one(FilterBox).open()

    def action_clear_filter(self) -> None:
        box = self.query_one(FilterBox)
        if self.model.filter or box.display:
            box.value = ""
            self._set_filter("")
            self._close_filter()

    def _set_filter(self, text: str) -> None:
        self.model.filter = text
        for kind in KINDS:
            self.rebuild(kind)
        self.refresh_bar()

    def _close_filter(self) -> None:
        self.query_one(FilterBox).display = False
        self.table("projects").focus()

    def jump_to(self, kind: str, name: str) -> None:
        """Select a row by name (the palette's "go to"); clears a filter that hides it."""
        if not self.model.matches(kind, name):
            self.query_one(FilterBox).value = ""
            self._set_filter("")
        table = self.table(kind)
        table.focus()
        table.move_cursor(row=table.get_row_index(name))
        self.selected = (kind, name)
        self.show_detail()

    # the command palette ----------------------------------------------------------------------
    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield from palette_commands(self, screen)


def run(url: str, token: str, ca_file: str | None = None, fingerprint: str | None = None) -> None:
    """Run the TUI until the user quits."""
    SyncopateApp(url, token, ca_file=ca_file, fingerprint=fingerprint).run()

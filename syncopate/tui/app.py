"""The Textual controller: a nodes table, a projects table and a detail pane, kept live.

A worker follows the manager's /events feed: the snapshot fills the tables, each batch of
changes updates only the rows (and in them only the cells) that changed, so the cursor and the
scroll stay where they are. When the feed drops, the header says so and the worker reconnects
with backoff; the snapshot that follows refreshes everything. Every action runs in a worker and
reports its result as a toast: the manager's own words on success and on refusal.
"""

from __future__ import annotations

import contextlib
import gc
import json
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any, ClassVar

from rich.text import Text
from textual import events, on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Input, Static

from syncopate.client import ManagerClient
from syncopate.errors import SyncopateError, Unauthorized
from syncopate.feed import FeedDropped
from syncopate.render import node_detail, project_detail
from syncopate.tui import rows
from syncopate.tui.model import FleetModel
from syncopate.tui.screens import (
    AddProjectScreen,
    CommandScreen,
    ConfirmScreen,
    HelpScreen,
    LogsScreen,
)

Clock = Callable[[], datetime]
NODES_REFRESH = 5.0  # seconds: node contact times are not pushed on /events
AGES_REFRESH = 5.0  # seconds between refreshes of the "ago" cells
FILTER_DELAY = 0.15  # seconds of no typing before the filter applies
KINDS = ("nodes", "projects")


def utc_now() -> datetime:
    return datetime.now(UTC)


# How each column sorts: by the value behind the cell, not its text ("1.5 GB" > "900 MB").
SORT_KEYS: dict[str, dict[str, Callable[[str, dict[str, Any]], Any]]] = {
    "projects": {
        "name": lambda name, info: name,
        "node": lambda name, info: str(info.get("node") or ""),
        "status": lambda name, info: str(info.get("status") or ""),
        "commit": lambda name, info: str(info.get("commit") or ""),
        "up": lambda name, info: str(info.get("started-at") or "~"),
        "restarts": lambda name, info: int(info.get("restarts") or 0),
        "ram": lambda name, info: float(info.get("ram-usage") or 0),
        "disk": lambda name, info: float(info.get("disk-usage") or 0),
        "vars": lambda name, info: len(info.get("persistent-variables") or {}),
    },
    "nodes": {
        "name": lambda name, info: name,
        "status": lambda name, info: str(info.get("status") or ""),
        "contact": lambda name, info: str(info.get("last-contact") or ""),
        "ram": lambda name, info: float(info.get("ram-usage") or 0),
        "storage": lambda name, info: float(info.get("disk-usage") or 0),
        "projects": lambda name, info: len(info.get("projects") or ()),
    },
}


class SyncopateApp(App[None]):
    """`syncopate tui`: the fleet, live, with a key for every action."""

    CSS_PATH = "syncopate.tcss"
    TITLE = "Syncopate"
    BINDINGS: ClassVar[list[BindingType]] = [
        # First, so a narrow footer still shows where the rest are listed.
        Binding("question_mark", "help", "Help", tooltip="this list of keys"),
        Binding("s", "start", "Start", tooltip="start the selected project"),
        Binding("x", "stop", "Stop", tooltip="stop it (it keeps its checkout and variables)"),
        Binding("r", "restart", "Restart", tooltip="restart its process"),
        Binding(
            "R", "reset", "Reset", tooltip="reset its variables to their initial values (asks)"
        ),
        Binding("a", "add", "Add", tooltip="add a project (a form)"),
        Binding("d", "remove", "Remove", tooltip="remove the selected project (asks)"),
        Binding("slash", "filter", "Filter", tooltip="filter both tables by name, node or status"),
        Binding("l", "logs", "Logs", tooltip="the selected project's output, live"),
        Binding(
            "c", "command", "Command", tooltip="send a program to the selected node and watch it"
        ),
        Binding("D", "drain", "Drain", tooltip="drain the selected node: its projects move (asks)"),
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
    ) -> None:
        super().__init__()
        self.url = url
        self.client = ManagerClient(url, token, ca_file=ca_file, fingerprint=fingerprint)
        self.live = live
        self.clock = clock
        self.model = FleetModel()
        self.connection = "connecting…"
        self.connected = False
        self._cells: dict[str, dict[str, tuple[rows.Cell, ...]]] = {k: {} for k in KINDS}
        self._sort: dict[str, tuple[str, bool]] = dict.fromkeys(KINDS, ("name", False))
        self.selected: tuple[str, str] | None = None  # (kind, name) of the row the keys act on
        self._filter_timer: Timer | None = None

    # layout -----------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(id="bar")
        yield DataTable(id="nodes", cursor_type="row", zebra_stripes=True)
        yield DataTable(id="projects", cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="detail-pane"):
            yield Static(id="detail")
        yield Input(
            placeholder="filter by name, node or status — Enter keeps it, Esc clears it",
            id="filter",
        )
        yield Footer(compact=True, show_command_palette=False)

    def table(self, kind: str) -> DataTable[rows.Cell]:
        return self.query_one(f"#{kind}", DataTable)

    def on_mount(self) -> None:
        for kind, columns in (("nodes", rows.NODE_COLUMNS), ("projects", rows.PROJECT_COLUMNS)):
            table = self.table(kind)
            for column in columns:
                table.add_column(column.label, width=column.width, key=column.key)
        self.table("nodes").border_title = "nodes"
        self.table("projects").border_title = "projects"
        self.query_one("#detail-pane").border_title = "detail"
        self.table("projects").focus()
        self.refresh_bar()
        self.show_detail()
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
                    error = message.error
                    why = f"token refused ({error})" if isinstance(error, Unauthorized) else error
                    self.set_connection(
                        False, f"disconnected — retrying in {message.delay:g}s: {why}"
                    )
                    continue
                if message.get("type") == "snapshot":
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
        for kind in KINDS:
            column, index, make = rows.AGE_CELLS[kind]
            infos = self.model.projects if kind == "projects" else self.model.nodes
            table = self.table(kind)
            for name, cells in self._cells[kind].items():
                value = make(infos[name], now)
                if value != cells[index]:
                    table.update_cell(name, column, value)
                    self._cells[kind][name] = (*cells[:index], value, *cells[index + 1 :])

    # applying changes -------------------------------------------------------------------------
    def apply(self, message: dict[str, Any]) -> None:
        """Apply one /events message to the model and to the rows it touched."""
        delta = self.model.apply(message)
        for kind in KINDS:
            if not delta.touches(kind):
                continue
            names = delta.changed[kind]
            refilter = any(self.model.matches(kind, n) != (n in self._cells[kind]) for n in names)
            if delta.full or delta.added[kind] or delta.removed[kind] or refilter:
                self.rebuild(kind)
            else:
                for name in names:
                    self._update_row(kind, name)
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

    def _row_cells(self, kind: str, name: str) -> tuple[rows.Cell, ...]:
        now = self.clock()
        if kind == "projects":
            return rows.project_row(name, self.model.projects[name], now)
        return rows.node_row(name, self.model.nodes[name], now)

    def _update_row(self, kind: str, name: str) -> None:
        if name not in self._cells[kind]:
            return
        table = self.table(kind)
        old = self._cells[kind][name]
        new = self._row_cells(kind, name)
        columns = rows.PROJECT_COLUMNS if kind == "projects" else rows.NODE_COLUMNS
        for column, before, after in zip(columns, old, new, strict=True):
            if before != after:
                table.update_cell(name, column.key, after)
        self._cells[kind][name] = new

    def order(self, kind: str) -> list[str]:
        """The visible rows' names in the table's sort order."""
        column, reverse = self._sort[kind]
        table = self.model.projects if kind == "projects" else self.model.nodes
        key = SORT_KEYS[kind][column]
        names = self.model.visible(kind)
        return sorted(names, key=lambda n: (key(n, table[n]), n), reverse=reverse)

    def rebuild(self, kind: str) -> None:
        """Fill a table again (rows came or went, or the filter or sort changed).

        The cursor stays on the row it was on (when that row is still there) and the scroll
        position is kept.
        """
        table = self.table(kind)
        current = self._cursor_name(kind)
        scroll = table.scroll_y
        table.clear()
        cells: dict[str, tuple[rows.Cell, ...]] = {}
        for name in self.order(kind):
            cells[name] = self._row_cells(kind, name)
            table.add_row(*cells[name], key=name)
        self._cells[kind] = cells
        keep_out_of_collections()
        if current in cells:
            table.move_cursor(row=table.get_row_index(current), scroll=False)
        table.scroll_to(y=scroll, animate=False)
        if self.selected is not None and self.selected[0] == kind and current not in cells:
            now_on = self._cursor_name(kind)
            self.selected = (kind, now_on) if now_on else None
            self.show_detail()

    def _cursor_name(self, kind: str) -> str | None:
        table = self.table(kind)
        if not table.is_valid_coordinate(table.cursor_coordinate):
            return None  # no rows, or the cursor is past them (they were removed)
        row_key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return str(row_key.value) if row_key.value is not None else None

    # the header and the detail ----------------------------------------------------------------
    def refresh_bar(self) -> None:
        # Most important first: a narrow terminal cuts the end (the URL).
        counts = self.model.counts()
        bar = Text()
        bar.append("● " if self.connected else "○ ", style="green" if self.connected else "red")
        if not self.connected:
            bar.append(self.connection + "  ", style="bold red")
        bar.append(f"nodes {counts['alive']}/{counts['nodes']} alive")
        if counts["dead"]:
            bar.append(f" {counts['dead']} dead", style="bold red")
        bar.append(f"  projects {counts['running']}/{counts['projects']} running")
        if counts["failed"]:
            bar.append(f" {counts['failed']} failing", style="bold red")
        if self.model.filter:
            bar.append(f"  filter: {self.model.filter}", style="bold yellow")
        bar.append(f"  {self.url}", style="dim")
        if self.connected:
            bar.append(" connected", style="dim")
        self.query_one("#bar", Static).update(bar)

    def show_detail(self) -> None:
        detail = self.query_one("#detail", Static)
        self._fill_detail(detail)
        detail.refresh(layout=True)  # its height follows the content

    def _fill_detail(self, detail: Static) -> None:
        if self.selected is None:
            detail.update(Text("select a node or a project", style="dim"))
            return
        kind, name = self.selected
        if kind == "projects" and name in self.model.projects:
            detail.update(project_detail(self.model.projects[name], self.clock()))
        elif kind == "nodes" and name in self.model.nodes:
            commands = self.model.commands_of(name)
            detail.update(node_detail(self.model.nodes[name], commands, self.clock()))
        else:
            detail.update(Text(f"{name} is gone", style="dim"))

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.has_focus and event.row_key.value is not None:
            self.selected = (str(event.data_table.id), str(event.row_key.value))
            self.show_detail()

    @on(DataTable.HeaderSelected)
    def _sort_by(self, event: DataTable.HeaderSelected) -> None:
        kind = str(event.data_table.id)
        column = str(event.column_key.value)
        current, reverse = self._sort[kind]
        self._sort[kind] = (column, not reverse if current == column else False)
        self.rebuild(kind)

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        widget = event.widget
        if isinstance(widget, DataTable) and widget.id in KINDS:
            name = self._cursor_name(str(widget.id))
            if name is not None:
                self.selected = (str(widget.id), name)
                self.show_detail()

    # what the keys act on ---------------------------------------------------------------------
    def selected_project(self) -> str | None:
        if self.selected and self.selected[0] == "projects":
            return self.selected[1]
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
        name = self.selected_project()
        if name is None:
            return
        initial = self.model.projects.get(name, {}).get("initial_variables") or {}
        body = (
            f"Reset {name}: its persistent variables go back to their initial values "
            f"{_compact(initial)} and it restarts with them. Its current variables are lost."
        )

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.act(f"reset {name}", lambda c: c.reset([name]))

        self.push_screen(ConfirmScreen(f"Reset {name}?", body, "Reset"), confirmed)

    def action_remove(self) -> None:
        name = self.selected_project()
        if name is None:
            return
        info = self.model.projects.get(name, {})
        node = info.get("node")
        where = f"stops it on {node}, deletes its checkout there" if node else "it runs nowhere"
        body = (
            f"Remove {name} ({info.get('project-url')}): {where}, and forgets it with its "
            "persistent variables and kept output. This cannot be undone."
        )
        url = str(info.get("project-url") or "")

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.act(f"remove {name}", lambda c: c.remove(name, url))

        self.push_screen(ConfirmScreen(f"Remove {name}?", body, "Remove"), confirmed)

    def action_drain(self) -> None:
        node = self.selected_node()
        if node is None:
            return
        placed = self.model.nodes.get(node, {}).get("projects") or []
        body = (
            f"Drain {node}: no new projects go there, and its {len(placed)} project(s) "
            "stop and move to other nodes with their variables."
        )

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.act(f"drain {node}", lambda c: c.drain(node))

        self.push_screen(ConfirmScreen(f"Drain {node}?", body, "Drain"), confirmed)

    def action_add(self) -> None:
        async def submit(spec: dict[str, Any]) -> str | None:
            try:
                answer = await self.client.add(**spec)
            except SyncopateError as exc:
                return str(exc)
            self.notify(str(answer.get("request-information") or "added"), title="add")
            return None

        self.push_screen(AddProjectScreen(submit))

    def action_logs(self) -> None:
        if name := self.selected_project():
            self.push_screen(LogsScreen(self.client, name))

    def action_command(self) -> None:
        if node := self.selected_node():
            self.push_screen(CommandScreen(self.client, node))

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.BINDINGS))

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.value = self.model.filter
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        if self.model.filter or box.display:
            box.value = ""
            self._set_filter("")
            self._close_filter()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        # Typing is batched: refilling 5,000 rows on every keystroke would lag behind the keys.
        if self._filter_timer is not None:
            self._filter_timer.stop()
        value = event.value
        self._filter_timer = self.set_timer(FILTER_DELAY, lambda: self._filter_to(value))

    @on(Input.Submitted, "#filter")
    def _filter_kept(self, event: Input.Submitted) -> None:
        if self._filter_timer is not None:
            self._filter_timer.stop()
        if event.value != self.model.filter:
            self._set_filter(event.value)
        self._close_filter()

    def _filter_to(self, text: str) -> None:
        if text != self.model.filter:
            self._set_filter(text)

    def _set_filter(self, text: str) -> None:
        self.model.filter = text
        for kind in KINDS:
            self.rebuild(kind)
        self.refresh_bar()

    def _close_filter(self) -> None:
        self.query_one("#filter", Input).display = False
        self.table("projects").focus()

    def jump_to(self, kind: str, name: str) -> None:
        """Select a row by name (the palette's "go to"); clears a filter that hides it."""
        if not self.model.matches(kind, name):
            self.query_one("#filter", Input).value = ""
            self._set_filter("")
        table = self.table(kind)
        table.focus()
        table.move_cursor(row=table.get_row_index(name))
        self.selected = (kind, name)
        self.show_detail()

    # the command palette ----------------------------------------------------------------------
    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for binding in self.BINDINGS:
            if isinstance(binding, Binding) and binding.show:
                action = binding.action
                yield SystemCommand(
                    binding.description,
                    f"key {binding.key_display or binding.key}",
                    lambda action=action: self.run_action(action),
                )
        for name in sorted(self.model.nodes):
            yield SystemCommand(
                f"go to node {name}", "select it", lambda n=name: self.jump_to("nodes", n)
            )
        for name in sorted(self.model.projects):
            yield SystemCommand(
                f"go to project {name}", "select it", lambda n=name: self.jump_to("projects", n)
            )


def keep_out_of_collections() -> None:
    """After a table is filled: its rows live as long as it does, so full collections need
    not walk them again and again (at 5,000 projects each took up to 150 ms).

    The rows a refill replaced are freed first (some are in reference cycles, and frozen
    objects are never collected): one full collection per refill, none per change.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _compact(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:79] + "…"


def run(url: str, token: str, ca_file: str | None = None, fingerprint: str | None = None) -> None:
    """Run the TUI until the user quits."""
    SyncopateApp(url, token, ca_file=ca_file, fingerprint=fingerprint).run()

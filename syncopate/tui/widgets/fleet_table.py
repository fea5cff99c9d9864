"""One of the main screen's two tables (nodes or projects), kept in step with the fleet model.

It keeps the cells it shows, so a change sets only the cells that differ and the cursor and the
scroll stay where they are; rows that come, go or move (filter, sort) refill the table.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar

from textual.binding import Binding, BindingType
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey

from syncopate.tui import rows
from syncopate.tui.model import FleetModel, name_order
from syncopate.tui.sort_keys import BY_LETTER, header
from syncopate.tui.sort_keys import SORT_KEYS as LETTERS

# How each column sorts: by the value behind the cell, not its text ("1.5 GB" > "900 MB").
SORT_KEYS: dict[str, dict[str, Callable[[str, dict[str, Any]], Any]]] = {
    "projects": {
        "name": lambda name, info: name_order(name),  # copies under their project
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
        "cpu": lambda name, info: cpu_percent(info),
    },
}


def cpu_percent(info: dict[str, Any]) -> float:
    """A node's CPU use to sort by; -1 (first) when it is not known."""
    cpu = (info.get("metrics") or {}).get("cpu")
    return float(cpu) if isinstance(cpu, int | float) and info.get("status") == "alive" else -1.0


class FleetTable(DataTable[rows.Cell]):
    """The `nodes` or `projects` table (its id is its kind) over a FleetModel."""

    # vi's keys beside the arrows, as in k9s and htop (the help screen lists them).
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        # Shift+letter sorts by a column (tui/sort_keys.py); `?` lists them.
        *(Binding(k.letter, f"sort('{k.letter}')", "Sort", show=False) for k in LETTERS),
    ]

    def __init__(self, kind: str, model: FleetModel, clock: Callable[[], datetime]) -> None:
        super().__init__(id=kind, cursor_type="row", zebra_stripes=True)
        self.kind = kind
        self.model = model
        self.clock = clock
        self.columns_shown = rows.PROJECT_COLUMNS if kind == "projects" else rows.NODE_COLUMNS
        self.cells: dict[str, tuple[rows.Cell, ...]] = {}  # what each visible row shows
        self.sort_by: tuple[str, bool] = ("name", False)  # (column, reversed)
        self.sort_values: dict[str, Any] = {}  # each visible row's value in the sorted column
        self.unsorted = False  # a sorted value changed since the rows were put in order

    def add_kind_columns(self) -> None:
        """The kind's columns, at fixed widths, and the border title (once, from on_mount)."""
        for column in self.columns_shown:
            self.add_column(column.label, width=column.width, key=column.key)
        self.border_title = self.kind

    def infos(self) -> dict[str, dict[str, Any]]:
        return self.model.projects if self.kind == "projects" else self.model.nodes

    def row_cells(self, name: str) -> tuple[rows.Cell, ...]:
        info = self.infos()[name]
        if self.kind == "projects":
            return rows.project_row(name, info, self.clock())
        return rows.node_row(name, info, self.clock())

    def update_row(self, name: str) -> None:
        """Set the cells of one row that changed (a row the filter hides is skipped).

        When its value in the sorted column changed, the table is marked `unsorted`: call
        `keep_sorted` once the batch of changes is in.
        """
        if name not in self.cells:
            return
        old = self.cells[name]
        new = self.row_cells(name)
        for column, before, after in zip(self.columns_shown, old, new, strict=True):
            if before != after:
                self.update_cell(name, column.key, after)
        self.cells[name] = new
        value = self.sort_value(name)
        if value != self.sort_values.get(name):
            self.sort_values[name] = value
            self.unsorted = True

    def sort_value(self, name: str) -> Any:
        column = self.sort_by[0]
        return SORT_KEYS[self.kind][column](name, self.infos()[name])

    def keep_sorted(self) -> None:
        """Put the rows back in the chosen order if a change moved one out of it (a drain
        changed the node's project count): the cursor stays on its row."""
        if not self.unsorted:
            return
        self.unsorted = False
        if self.order() != list(self.cells):
            self.rebuild()

    def refresh_ages(self, now: datetime) -> None:
        """The "ago" cells age with the clock: only they are made again, and set if changed."""
        column, index, make = rows.AGE_CELLS[self.kind]
        infos = self.infos()
        for name, cells in self.cells.items():
            value = make(infos[name], now)
            if value != cells[index]:
                self.update_cell(name, column, value)
                self.cells[name] = (*cells[:index], value, *cells[index + 1 :])

    def order(self) -> list[str]:
        """The visible rows' names in the table's sort order."""
        column, reverse = self.sort_by
        infos = self.infos()
        key = SORT_KEYS[self.kind][column]
        self.sort_values = {n: key(n, infos[n]) for n in self.model.visible(self.kind)}
        values = self.sort_values
        return sorted(values, key=lambda n: (values[n], n), reverse=reverse)

    def sort_on(self, column: str) -> None:
        """Sort by a column, and mark its header; the same column again reverses the order.

        The default order (by name) is not marked until a key or a click asks for a sort.
        """
        current, reverse = self.sort_by
        self.sort_by = (column, not reverse if current == column else False)
        for shown in self.columns_shown:
            self.columns[ColumnKey(shown.key)].label = header(shown, self.sort_by)
        self.rebuild()  # sorting moves rows but removes none: the selection stays

    def action_sort(self, letter: str) -> None:
        """Shift+letter: sort by that letter's column, or say this table has none."""
        key = BY_LETTER[letter]
        column = key.column(self.kind)
        if column is None:
            self.notify(f"the {self.kind} table has no {key.meaning} column", severity="warning")
            return
        self.sort_on(column)

    def rebuild(self) -> bool:
        """Fill the table again (rows came or went, or the filter or sort changed).

        The cursor stays on the row it was on (when that row is still there) and the scroll
        position is kept. True when the row under the cursor is gone.
        """
        current = self.cursor_name()
        scroll = self.scroll_y
        self.clear()
        cells: dict[str, tuple[rows.Cell, ...]] = {}
        for name in self.order():
            cells[name] = self.row_cells(name)
            self.add_row(*cells[name], key=name)
        self.cells = cells
        keep_out_of_collections()
        if current in cells:
            self.move_cursor(row=self.get_row_index(current), scroll=False)
        self.scroll_to(y=scroll, animate=False)
        return current not in cells

    def cursor_name(self) -> str | None:
        """The name of the row under the cursor, if any."""
        if not self.is_valid_coordinate(self.cursor_coordinate):
            return None  # no rows, or the cursor is past them (they were removed)
        row_key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        return str(row_key.value) if row_key.value is not None else None


def keep_out_of_collections() -> None:
    """After a table is filled: its rows live as long as it does, so full collections need
    not walk them again and again (at 5,000 projects each took up to 150 ms).

    The rows a refill replaced are freed first (some are in reference cycles, and frozen
    objects are never collected): one full collection per refill, none per change.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()

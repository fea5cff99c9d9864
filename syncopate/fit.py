"""Tables that fit the width they are drawn at, one line per row (`project list` at 80 columns).

Rich, given a table too wide for the terminal, squeezes every column alike: names become
`pi…` and a long reason wraps one word per line. A `FitTable` decides instead, each time it
is drawn (so the demo's live view follows a resized terminal):

- a column that must stay (`keep=None`: the name, the status) is never cut;
- the others go, lowest `keep` first, until the rest fits;
- one `flexible` column (a reason, labels, code) takes the width that is left, on one line,
  cut with `…` (`show` has the full text).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text

Cell = str | Text
GAP = 2  # between two columns: rich's padding (0, 1) on each side, none at the edges


@dataclass(frozen=True)
class Column:
    """One column of a FitTable.

    `keep`: None for a column that always stays; else the higher, the later it is dropped
    when the table is too wide. `flexible`: takes the width left over (at least `min_width`),
    cut with `…`.
    """

    header: str
    justify: Literal["left", "right"] = "left"
    keep: int | None = None
    flexible: bool = False
    min_width: int = 8


def _one_line(cell: Cell) -> Cell:
    # A reason or a label may hold a line break; a row is one line.
    if isinstance(cell, Text):
        return cell if "\n" not in cell.plain else Text(" ".join(cell.plain.split()), cell.style)
    return " ".join(cell.split()) if "\n" in cell else cell


def _width(cell: Cell) -> int:
    return cell.cell_len if isinstance(cell, Text) else Text(cell).cell_len


class FitTable:
    """A table of `columns` and `rows` that fits the width it is drawn at (see the module)."""

    def __init__(self, columns: Sequence[Column], rows: Sequence[Sequence[Cell]]) -> None:
        self.columns = list(columns)
        self.rows = [[_one_line(cell) for cell in row] for row in rows]

    def natural_widths(self) -> list[int]:
        """Each column's width with nothing cut: its widest cell or its header."""
        return [
            max([len(column.header), *(_width(row[i]) for row in self.rows)])
            for i, column in enumerate(self.columns)
        ]

    def kept(self, width: int) -> list[int]:
        """The indexes of the columns shown at `width`, in their order."""
        natural = self.natural_widths()
        shown = list(range(len(self.columns)))

        def needed() -> int:
            widths = [
                min(natural[i], self.columns[i].min_width)
                if self.columns[i].flexible
                else natural[i]
                for i in shown
            ]
            return sum(widths) + GAP * (len(shown) - 1)

        while needed() > width:
            droppable = [i for i in shown if self.columns[i].keep is not None]
            if not droppable:
                break
            # The least kept goes first; of equals, the rightmost.
            shown.remove(min(reversed(droppable), key=lambda i: self.columns[i].keep or 0))
        return shown

    def table(self, width: int) -> Table:
        """The rich Table for `width` columns."""
        natural = self.natural_widths()
        shown = self.kept(width)
        fixed = sum(natural[i] for i in shown if not self.columns[i].flexible)
        left = width - fixed - GAP * (len(shown) - 1)
        table = Table(box=None, header_style="bold", pad_edge=False)
        for i in shown:
            column = self.columns[i]
            if column.flexible:
                size = max(1, min(natural[i], left))
                table.add_column(
                    column.header,
                    justify=column.justify,
                    no_wrap=True,
                    overflow="ellipsis",
                    width=size,
                )
            else:
                # min_width: rich must not squeeze a kept column (a name cut to `pi…`).
                table.add_column(
                    column.header, justify=column.justify, no_wrap=True, min_width=natural[i]
                )
        for row in self.rows:
            table.add_row(*(row[i] for i in shown))
        return table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.table(options.max_width)

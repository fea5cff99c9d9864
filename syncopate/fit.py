"""Tables that fit the width they are drawn at, one line per row (`project list` at 80 columns).

Rich, given a table too wide for the terminal, squeezes every column alike: names become
`pi…` and a long reason wraps one word per line. A `FitTable` decides instead, each time it
is drawn (so the demo's live view follows a resized terminal):

- a column that must stay (`keep=None`: the name, the status) is never dropped, and never cut
  but for one that may be cut (`cut_before`, a name): a 57-character name would otherwise
  leave room for the status alone;
- the others go, lowest `keep` first, until the rest fits; a column that may be cut is cut,
  with `…`, to keep those with a `keep` of `cut_before` or more (where it runs, why), but never
  below its `min_width` (`show` and `--json` have it whole);
- one `flexible` column (a reason, labels, code) takes the width that is left, on one line,
  cut with `…` (`show` has the full text).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text

if TYPE_CHECKING:
    from rich.table import Table

Cell = str | Text
GAP = 2  # between two columns: rich's padding (0, 1) on each side, none at the edges


@dataclass(frozen=True)
class Column:
    """One column of a FitTable.

    `keep`: None for a column that always stays; else the higher, the later it is dropped
    when the table is too wide. `flexible`: takes the width left over (at least `min_width`),
    cut with `…`. `cut_before`: a kept column that is cut with `…` (to no less than
    `min_width`) rather than drop a column whose `keep` is `cut_before` or more.
    """

    header: str
    justify: Literal["left", "right"] = "left"
    keep: int | None = None
    flexible: bool = False
    min_width: int = 8
    cut_before: int | None = None


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

        def needed(cut: bool) -> int:
            widths = [
                min(natural[i], self.columns[i].min_width)
                if self.columns[i].flexible or (cut and self.columns[i].cut_before is not None)
                else natural[i]
                for i in shown
            ]
            return sum(widths) + GAP * (len(shown) - 1)

        def drop(cut: bool, below: float) -> None:
            # The least kept goes first; of equals, the rightmost.
            while needed(cut) > width:
                droppable = [i for i in shown if (self.columns[i].keep or 0) < below]
                droppable = [i for i in droppable if self.columns[i].keep is not None]
                if not droppable:
                    return
                shown.remove(min(reversed(droppable), key=lambda i: self.columns[i].keep or 0))

        # Whole first, dropping what ranks below every cut_before; then cut, dropping the rest.
        limits = [c.cut_before for c in self.columns if c.cut_before is not None]
        drop(cut=False, below=min(limits, default=float("inf")))
        drop(cut=True, below=float("inf"))
        return shown

    def widths(self, width: int) -> dict[int, int]:
        """Each shown column's width at `width` (natural, but for those cut to fit)."""
        natural = self.natural_widths()
        shown = self.kept(width)
        sized = {i: natural[i] for i in shown}
        flexible = [i for i in shown if self.columns[i].flexible]
        # A flexible column keeps its least width while a cut one shrinks; then takes the rest.
        for i in [i for i in shown if self.columns[i].cut_before is not None]:
            others = sum(
                min(natural[j], self.columns[j].min_width) if j in flexible else sized[j]
                for j in shown
                if j != i
            )
            room = width - others - GAP * (len(shown) - 1)
            sized[i] = max(min(self.columns[i].min_width, natural[i]), min(natural[i], room))
        for i in flexible:
            room = width - sum(sized[j] for j in shown if j != i) - GAP * (len(shown) - 1)
            sized[i] = max(1, min(natural[i], room))
        return sized

    def lines(self, width: int) -> list[Text]:
        """The header and the rows at `width` columns, a line each.

        Drawn here, padded to the widths `widths` chose, rather than by a rich Table: the widths
        are known, and rich's measuring of every cell cost `project list` about 40 ms (of a
        250 ms budget) for 50 rows. A str cell is plain text, never rich markup."""
        sized = self.widths(width)
        header: list[Cell] = [Text(self.columns[i].header, style="bold") for i in sized]
        lines = []
        for cells in [header, *([row[i] for i in sized] for row in self.rows)]:
            line = Text(no_wrap=True, overflow="ellipsis", end="")
            for n, (i, cell) in enumerate(zip(sized, cells, strict=True)):
                size = sized[i]
                shown = cell.copy() if isinstance(cell, Text) else Text(cell)
                if shown.cell_len > size:
                    shown.truncate(size, overflow="ellipsis")
                pad = " " * (size - shown.cell_len)
                if n:
                    line.append(" " * GAP)
                if self.columns[i].justify == "right":
                    line.append(pad)
                    line.append_text(shown)
                else:
                    line.append_text(shown)
                    if n < len(sized) - 1:  # no trailing blanks after the last column
                        line.append(pad)
            lines.append(line)
        return lines

    def table(self, width: int) -> Table:
        """The rich Table for `width` columns: for a width the kept columns overflow (under
        about 60 columns), where rich squeezes them all alike rather than cut the last."""
        from rich.table import Table  # only then: importing it costs a list 7 ms

        natural = self.natural_widths()
        sized = self.widths(width)
        table = Table(box=None, header_style="bold", pad_edge=False)
        for i, size in sized.items():
            column = self.columns[i]
            if size < natural[i]:  # a flexible or a cut column, narrower than its text
                table.add_column(
                    column.header,
                    justify=column.justify,
                    no_wrap=True,
                    overflow="ellipsis",
                    width=size,
                )
            elif column.flexible:
                table.add_column(column.header, justify=column.justify, no_wrap=True, width=size)
            else:
                # min_width: rich must not squeeze a kept column (a name cut to `pi…`).
                table.add_column(
                    column.header, justify=column.justify, no_wrap=True, min_width=natural[i]
                )
        for row in self.rows:
            table.add_row(*(row[i] for i in sized))
        return table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        sized = self.widths(options.max_width)
        if sum(sized.values()) + GAP * (len(sized) - 1) > options.max_width:
            yield self.table(options.max_width)
            return
        # The joined text ends with a newline, as a rich Table does: the prompt goes below it.
        yield Text("\n").join(self.lines(options.max_width))

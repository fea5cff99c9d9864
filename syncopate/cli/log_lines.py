"""How `syncopate logs` prints output lines: with their time, a project prefix, or as JSON.

    printer = LinePrinter(times=True, prefix=True)
    printer.show("counter", 12, ["count 12"], ["2026-12-03T12:01:02.000Z"])
    # 2026-12-03 12:01:02 counter | count 12      (the time in this machine's local zone)

Each project's lines are numbered (`seq`, as the manager numbers them); a line that comes
twice (the kept lines and the /events feed overlap) is printed once. `merged` puts several
projects' kept lines in time order for `logs --all`, each project's own order kept.
"""

from __future__ import annotations

import heapq
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import typer

from syncopate.cli.output import print_json_line
from syncopate.feed import NumberedLines
from syncopate.render import local_time

# The widest project prefix of `logs --all`: a longer name is cut (…), so it does not eat the
# line (a 57-character name would leave an 80-column terminal little room for the output).
PREFIX_WIDTH = 16


@dataclass(frozen=True)
class Line:
    """One numbered output line of a project, and when it was produced (ISO 8601 UTC)."""

    name: str
    seq: int
    time: str | None
    line: str

    def as_json(self) -> dict[str, object]:
        return {"name": self.name, "seq": self.seq, "time": self.time, "line": self.line}


def lines_of(name: str, seq: int, lines: Sequence[str], times: Sequence[str | None]) -> list[Line]:
    """A batch as `Line`s (a manager that sends no `times` leaves them unknown)."""
    stamps = list(times) if len(times) == len(lines) else [None] * len(lines)
    return [Line(name, seq + i, stamps[i], text) for i, text in enumerate(lines)]


def merged(batches: Iterable[list[Line]]) -> list[Line]:
    """Several projects' lines in time order; each project's own lines stay in their order
    (a line without a time sorts first)."""
    return list(heapq.merge(*batches, key=lambda line: line.time or ""))


class LinePrinter:
    """Prints each project's numbered lines once, in order, and says when some were lost."""

    def __init__(self, *, times: bool = True, prefix: bool = False, as_json: bool = False) -> None:
        self.times = times
        self.prefix = prefix
        self.as_json = as_json
        self.width = 0  # of the widest project name printed so far (up to PREFIX_WIDTH)
        self.numbered: dict[str, NumberedLines] = {}

    def started(self, name: str) -> bool:
        """Whether lines of `name` were taken already (its numbering has begun)."""
        numbered = self.numbered.get(name)
        return numbered is not None and numbered.next_seq is not None

    def new(self, batch: list[Line]) -> list[Line]:
        """The lines of one project's batch not taken yet; says how many were lost before."""
        if not batch:
            return []
        name = batch[0].name
        numbered = self.numbered.setdefault(name, NumberedLines())
        skipped, texts = numbered.take(batch[0].seq, [line.line for line in batch])
        if skipped:
            where = f" of {name}" if self.prefix else ""
            count = "1 line" if skipped == 1 else f"{skipped} lines"
            typer.secho(f"… {count}{where} no longer kept by the manager", err=True)
        return batch[len(batch) - len(texts) :]

    def show(self, name: str, seq: int, lines: Sequence[str], times: Sequence[str | None]) -> None:
        """Print the new ones of a batch (as the `logs` answer or an /events message has it)."""
        self.print(self.new(lines_of(name, seq, lines, times)))

    def print(self, lines: Iterable[Line]) -> None:
        """Print lines as they are (they were taken already): text, or JSON Lines."""
        for line in lines:
            if self.as_json:
                print_json_line(line.as_json())
            else:
                sys.stdout.write(self.format(line) + "\n")
        sys.stdout.flush()

    def format(self, line: Line) -> str:
        """`2026-12-03 12:01:02 counter | text`: the time and prefix as asked for."""
        head: list[str] = []
        if self.times:
            head.append(local_time(line.time))
        if self.prefix:
            name = short_name(line.name)
            self.width = min(max(self.width, len(name)), PREFIX_WIDTH)
            head.append(f"{name:<{self.width}} |")
        return " ".join([*head, line.line])


def short_name(name: str) -> str:
    """A project name for the prefix: as it is, or cut to PREFIX_WIDTH with `…`."""
    return name if len(name) <= PREFIX_WIDTH else name[: PREFIX_WIDTH - 1] + "…"

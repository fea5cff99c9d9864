"""What the demo shows while the fleet runs: a live table on a terminal, else a line per change.

Both take `Snapshot`s, the manager's `nodes` and `status` answers as of one moment; `summary`
is a pure function of one, so tests and pipes get the same sentence.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from syncopate.render import nodes_table, projects_table, short


@dataclass(frozen=True)
class Snapshot:
    """The fleet as the manager sees it; `problem` when the manager did not answer."""

    nodes: Mapping[str, Mapping[str, Any]]
    projects: Mapping[str, Mapping[str, Any]]
    problem: str = ""


class View(Protocol):
    def show(self, snapshot: Snapshot) -> None: ...

    def note(self, message: str) -> None: ...

    def close(self) -> None: ...


def summary(snapshot: Snapshot) -> str:
    """`demo: 3 nodes alive, 2 of 3 projects running: counter on demo-1, ticker cloning on ...`."""
    if snapshot.problem:
        return f"demo: {snapshot.problem}"
    alive = sum(1 for info in snapshot.nodes.values() if info.get("status") == "alive")
    nodes = f"{alive} of {len(snapshot.nodes)} nodes alive"
    if alive == len(snapshot.nodes):
        nodes = f"{alive} node{'' if alive == 1 else 's'} alive"
    running = 0
    parts = []
    for name in sorted(snapshot.projects):
        info = snapshot.projects[name]
        status, node = info.get("status") or "?", info.get("node")
        running += status == "running"
        shown = name if status == "running" else f"{name} {status}"
        parts.append(f"{shown} on {node}" if node else shown)
    total = len(snapshot.projects)
    projects = f"{running} of {total} projects running"
    if running == total:
        projects = f"{running} project{'' if running == 1 else 's'} running"
    return f"demo: {nodes}, {projects}" + (f": {', '.join(parts)}" if parts else "")


class LineView:
    """A line when the summary changes: for pipes, logs and tests."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.last = ""

    def show(self, snapshot: Snapshot) -> None:
        line = summary(snapshot)
        if line != self.last:
            self.last = line
            self.note(line)

    def note(self, message: str) -> None:
        self.out.write(message + "\n")
        self.out.flush()

    def close(self) -> None:
        pass


class TableView:
    """The nodes and projects tables, redrawn in place under the demo's opening lines."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self.live = Live(console=self.console, auto_refresh=False, transient=False)
        self.live.start()

    def show(self, snapshot: Snapshot) -> None:
        self.live.update(fleet_view(snapshot), refresh=True)

    def note(self, message: str) -> None:
        self.console.print(message, highlight=False, markup=False)

    def close(self) -> None:
        self.live.stop()


def fleet_view(snapshot: Snapshot) -> RenderableType:
    """The tables of the live view: nodes, projects, and each project's variables and output."""
    parts: list[RenderableType] = []
    if snapshot.problem:
        parts += [Text(snapshot.problem, style="bold yellow"), Text()]
    parts += [nodes_table(snapshot.nodes), Text(), projects_table(snapshot.projects), Text()]
    latest = Table(box=None, header_style="bold", pad_edge=False, expand=True)
    latest.add_column(
        "PROJECT", no_wrap=True, min_width=max(map(len, snapshot.projects), default=7)
    )
    latest.add_column("VARIABLES", style="cyan", overflow="ellipsis", no_wrap=True, ratio=1)
    latest.add_column("LAST OUTPUT", overflow="ellipsis", no_wrap=True, ratio=1)
    for name in sorted(snapshot.projects):
        info = snapshot.projects[name]
        variables = json.dumps(info.get("persistent-variables") or {}, separators=(", ", ": "))
        tail = [line for line in info.get("log-tail") or () if str(line).strip()]
        latest.add_row(name, short(variables, 200), short(tail[-1] if tail else "-", 200))
    parts += [latest, Text(), Text("Ctrl-C stops the demo and everything it started.", style="dim")]
    return Group(*parts)

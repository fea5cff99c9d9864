"""What the TUI's tables show: their columns (fixed widths) and each row's cells.

Pure functions of the manager's answers and a clock, built on the shared formats
(`syncopate.render`) so a project looks the same in `project list` and in the TUI.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.text import Text

from syncopate.metrics_text import cpu_cell
from syncopate.render import ago, project_status, short, status_text


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int


# Widths fit the values' formats, so a changing value never resizes a column.
# The projects table fits 80 columns (9 columns, each padded by 2, inside a border), and so
# does the nodes table (7 columns).
PROJECT_COLUMNS = (
    Column("name", "NAME", 10),
    Column("node", "NODE", 9),
    Column("status", "STATUS", 13),
    Column("commit", "COMMIT", 7),
    Column("up", "UP", 4),
    Column("restarts", "RST", 3),
    Column("ram", "RAM", 5),
    Column("disk", "DISK", 5),
    Column("vars", "VAR", 3),
)
NODE_COLUMNS = (
    Column("name", "NAME", 12),
    Column("status", "STATUS", 13),
    Column("contact", "CONTACT", 7),
    Column("ram", "RAM USED", 11),
    Column("storage", "DISK USED", 11),
    Column("projects", "PROJ", 4),
    Column("cpu", "CPU", 4),
)

Cell = str | Text


def right(text: str, width: int) -> Text:
    return Text(text.rjust(width))


def short_size(megabytes: object) -> str:
    """A size in at most 5 characters: `0`, `12M`, `512M`, `1.5G`, `37G`, `2.0T`; `-` unknown."""
    if not isinstance(megabytes, int | float) or isinstance(megabytes, bool) or megabytes < 0:
        return "-"
    if megabytes < 0.5:
        return "0"
    for unit, scale in (("M", 1.0), ("G", 1024.0), ("T", 1024.0**2), ("P", 1024.0**3)):
        value = megabytes / scale
        if value < 9.95:
            return f"{value:.1f}{unit}" if unit != "M" else f"{value:.0f}{unit}"
        if value < 999.5:
            return f"{value:.0f}{unit}"
    return f"{megabytes / 1024.0**3:.0f}P"


def used_of(used: object, total: object) -> str:
    return f"{short_size(used)}/{short_size(total)}"


def project_age(info: Mapping[str, Any], now: datetime) -> Text:
    """The UP cell: how long a running project has run."""
    running = info.get("status") == "running"
    return right(ago(info.get("started-at"), now).removesuffix(" ago") if running else "-", 4)


def node_age(info: Mapping[str, Any], now: datetime) -> str:
    """The CONTACT cell: how long ago the node was last heard from."""
    return ago(info.get("last-contact"), now).removesuffix(" ago")


# The cells that change with the clock alone: (column key, its index, how to make it).
AGE_CELLS: dict[str, tuple[str, int, Callable[[Mapping[str, Any], datetime], Cell]]] = {
    "projects": ("up", 4, project_age),
    "nodes": ("contact", 2, node_age),
}


def project_row(name: str, info: Mapping[str, Any], now: datetime) -> tuple[Cell, ...]:
    """The cells of a project's row, in PROJECT_COLUMNS order."""
    node = str(info.get("node") or ("every" if "copies" in info else "-"))
    if info.get("moving-to"):
        node = f"{node}→{info['moving-to']}"
    restarts = int(info.get("restarts") or 0)
    variables = info.get("persistent-variables")
    parent = info.get("copy-of")
    # A copy of an every-node project sits under it: `└@NODE`.
    shown = "└" + short(name[len(parent) :], 9) if parent else short(name, 10)
    return (
        shown,
        short(node, 9),
        project_status(info, compact=True),
        str(info.get("commit") or "-")[:7],
        project_age(info, now),
        right(str(restarts) if restarts < 1000 else "999", 3),
        right(short_size(info.get("ram-usage")), 5),
        right(short_size(info.get("disk-usage")), 5),
        right(str(len(variables)) if isinstance(variables, dict) else "-", 3),
    )


def node_row(name: str, info: Mapping[str, Any], now: datetime) -> tuple[Cell, ...]:
    """The cells of a node's row, in NODE_COLUMNS order."""
    shown = status_text(info.get("status"))
    if info.get("drained"):
        shown.append(" drained", style="yellow")
    if info.get("kind") == "lite":
        shown.append(" lite", style="dim")
    return (
        short(name, 12),
        shown,
        node_age(info, now),
        used_of(info.get("ram-usage"), info.get("ram")),
        used_of(info.get("disk-usage"), info.get("storage")),
        right(str(len(info.get("projects") or ())), 4),
        # A dead node's last figure would pass for a current one.
        right(cpu_cell(info.get("metrics")) if info.get("status") == "alive" else "-", 4),
    )

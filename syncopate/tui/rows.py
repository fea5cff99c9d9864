"""What the TUI's tables show: their columns (fixed widths) and each row's cells.

Pure functions of the manager's answers and a clock, built on the CLI's formats (`cli.render`)
so a project looks the same in `project list` and in the TUI.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.text import Text

from syncopate.cli.render import ago, project_status, short, size, status_text


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int


# Widths fit the values' formats, so a changing value never resizes a column.
PROJECT_COLUMNS = (
    Column("name", "NAME", 16),
    Column("node", "NODE", 12),
    Column("status", "STATUS", 13),
    Column("commit", "COMMIT", 8),
    Column("up", "UP", 5),
    Column("restarts", "RESTARTS", 8),
    Column("ram", "RAM", 6),
    Column("disk", "DISK", 6),
    Column("vars", "VARS", 4),
)
NODE_COLUMNS = (
    Column("name", "NAME", 16),
    Column("status", "STATUS", 13),
    Column("contact", "CONTACT", 7),
    Column("ram", "RAM USED/TOTAL", 15),
    Column("storage", "DISK USED/TOTAL", 15),
    Column("projects", "PROJECTS", 8),
)

Cell = str | Text


def right(text: str, width: int) -> Text:
    return Text(text.rjust(width))


def project_row(name: str, info: Mapping[str, Any], now: datetime) -> tuple[Cell, ...]:
    """The cells of a project's row, in PROJECT_COLUMNS order."""
    status = info.get("status")
    node = str(info.get("node") or "-")
    if info.get("moving-to"):
        node = f"{node}→{info['moving-to']}"
    up = ago(info.get("started-at"), now).removesuffix(" ago") if status == "running" else "-"
    variables = info.get("persistent-variables")
    return (
        short(name, 16),
        short(node, 12),
        project_status(info),
        str(info.get("commit") or "-")[:8],
        right(up, 5),
        right(str(info.get("restarts") or 0), 8),
        right(size(info.get("ram-usage")), 6),
        right(size(info.get("disk-usage")), 6),
        right(str(len(variables)) if isinstance(variables, dict) else "-", 4),
    )


def node_row(name: str, info: Mapping[str, Any], now: datetime) -> tuple[Cell, ...]:
    """The cells of a node's row, in NODE_COLUMNS order."""
    shown = status_text(info.get("status"))
    if info.get("drained"):
        shown.append(" drained", style="yellow")
    if info.get("kind") == "lite":
        shown.append(" lite", style="dim")
    return (
        short(name, 16),
        shown,
        ago(info.get("last-contact"), now).removesuffix(" ago"),
        f"{size(info.get('ram-usage'))} / {size(info.get('ram'))}",
        f"{size(info.get('disk-usage'))} / {size(info.get('storage'))}",
        right(str(len(info.get("projects") or ())), 8),
    )

"""The command channel's tables and details for the CLI (`command list`, `command show`):
rich renderables from the manager's answers, like render.py's for projects and nodes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from syncopate.fit import Column, FitTable
from syncopate.render import ago, exit_text, first_line, status_text

COMMAND_COLUMNS = (
    Column("ID", "right"),
    Column("NODE"),
    Column("STATE"),
    Column("EXIT", "right", keep=8),
    Column("USER", keep=5),
    Column("SENT", keep=7),
    Column("TOOK", "right", keep=4),
    Column("CODE", keep=6, flexible=True, min_width=12),
)


def commands_table(
    commands: Mapping[str, Mapping[str, Any]], now: datetime | None = None
) -> FitTable:
    """One row per command, in the answer's order (newest first); a line a row at any width."""
    rows: list[list[str | Text]] = []
    for key, info in commands.items():
        duration = info.get("duration")
        rows.append(
            [
                str(info.get("id", key)),
                str(info.get("node") or "-"),
                status_text(info.get("state")),
                exit_text(info),
                str(info.get("user") or "-"),
                ago(info.get("created"), now),
                "-" if duration is None else f"{float(duration):.2f}s",
                first_line(info.get("code"), 30),
            ]
        )
    return FitTable(COMMAND_COLUMNS, rows)


def _seconds(value: object) -> str:
    return f"{value:g}s" if isinstance(value, int | float) else "-"


def command_detail(info: Mapping[str, Any], now: datetime | None = None) -> RenderableType:
    """One command in full: who sent it where, every step with its time, code and response."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    duration = info.get("duration")
    rows: list[tuple[str, str | Text]] = [
        ("command", str(info.get("id"))),
        ("state", status_text(info.get("state"))),
        ("node", str(info.get("node") or "-") + (" (lite device)" if info.get("lite") else "")),
        ("sent by", str(info.get("user") or "-")),
        ("interpreter", str(info.get("interpreter") or "python")),
        (
            "timeout",
            f"{_seconds(info.get('timeout'))} (collect within {_seconds(info.get('pickup'))})",
        ),
        ("exit code", exit_text(info)),
        ("took", "-" if duration is None else f"{float(duration):.3f}s"),
    ]
    env = info.get("env") or {}
    if env:
        rows.append(("env", " ".join(f"{k}={v}" for k, v in sorted(env.items()))))
    if info.get("reason"):
        rows.append(("reason", Text(str(info["reason"]), style="yellow")))
    for key, value in rows:
        grid.add_row(key, value)
    steps = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("STEP", "AT", "BY"):
        steps.add_column(column, no_wrap=True)
    for step in info.get("history") or ():
        steps.add_row(status_text(step.get("state")), str(step.get("at")), str(step.get("by")))
    parts: list[RenderableType] = [grid, Text(), steps, Text()]
    parts.append(Text("code", style="bold"))
    parts.append(Text(str(info.get("code") or "").rstrip("\n"), style="cyan"))
    if info.get("response") is not None:
        parts += [Text(), Text("response", style="bold"), Text(str(info["response"]).rstrip("\n"))]
    if info.get("analysis") is not None:
        parts += [Text(), Text("analysis", style="bold"), Text(str(info["analysis"]))]
    return Group(*parts)

"""The main screen's top line: the connection, the fleet's counts, the filter, the manager."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from syncopate.tui.model import FleetModel


def bar_text(model: FleetModel, url: str, connected: bool, connection: str) -> Text:
    """Most important first: a narrow terminal cuts the end (the URL)."""
    counts = model.counts()
    bar = Text()
    bar.append("● " if connected else "○ ", style="green" if connected else "red")
    if not connected:
        bar.append(connection + "  ", style="bold red")
    bar.append(f"nodes {counts['alive']}/{counts['nodes']} alive")
    if counts["dead"]:
        bar.append(f" {counts['dead']} dead", style="bold red")
    bar.append(f"  projects {counts['running']}/{counts['projects']} running")
    if counts["failed"]:
        bar.append(f" {counts['failed']} failing", style="bold red")
    if model.filter:
        bar.append(f"  filter: {model.filter}", style="bold yellow")
    bar.append(f"  {url}", style="dim")
    if connected:
        bar.append(" connected", style="dim")
    return bar


class StatusBar(Static):
    """The one-line header (`#bar`)."""

    def show(self, model: FleetModel, url: str, connected: bool, connection: str) -> None:
        self.update(bar_text(model, url, connected, connection))

"""The main screen's top line: the connection, the fleet's counts, the filter, the manager."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from syncopate.errors import SyncopateError, Unauthorized
from syncopate.feed import FeedDropped, FeedRevoked
from syncopate.tui.model import FleetModel


def drop_text(drop: FeedDropped) -> str:
    """The header's reason for a lost feed, the reason first (a narrow terminal cuts the end).
    A refused token (the feed closed as revoked, or a 401) is not a network problem, and the
    TUI stops there (`token_refused`): trying the same token again cannot help, and each try
    counts as a guess against every controller at this address (DESIGN §15)."""
    error: SyncopateError = drop.error
    if isinstance(error, FeedRevoked):
        return "token revoked — not retrying; start again with a valid token"
    if isinstance(error, Unauthorized):
        return (
            "token refused (revoked, rotated or wrong) — not retrying; start again with a valid one"
        )
    return f"disconnected — retrying in {drop.delay:g}s: {error}"


def token_refused(drop: FeedDropped) -> bool:
    """Whether the feed was lost to a refused token: the TUI does not try it again."""
    return isinstance(drop.error, FeedRevoked | Unauthorized)


def bar_text(
    model: FleetModel, url: str, connected: bool, connection: str, stale: bool = False
) -> Text:
    """Most important first: a narrow terminal cuts the end (the URL). `stale`: the feed was
    lost, the counts are the last known (the tables are greyed too, see syncopate.tcss)."""
    counts = model.counts()
    bar = Text()
    bar.append("● " if connected else "○ ", style="green" if connected else "red")
    if not connected:
        bar.append(connection + "  ", style="bold red")
    if stale:
        bar.append("last known: ", style="dim")
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

    def show(
        self, model: FleetModel, url: str, connected: bool, connection: str, stale: bool = False
    ) -> None:
        self.update(bar_text(model, url, connected, connection, stale))

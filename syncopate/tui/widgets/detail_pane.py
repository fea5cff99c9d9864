"""The main screen's lower pane: everything about the selected node or project."""

from __future__ import annotations

from datetime import datetime

from rich.console import RenderableType
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from syncopate.render import node_detail, project_detail
from syncopate.tui.model import FleetModel


def detail_of(model: FleetModel, selected: tuple[str, str] | None, now: datetime) -> RenderableType:
    """The detail of the selected (kind, name), from the model; a hint when there is none."""
    if selected is None:
        return Text("select a node or a project", style="dim")
    kind, name = selected
    if kind == "projects" and name in model.projects:
        return project_detail(model.projects[name], now)
    if kind == "nodes" and name in model.nodes:
        return node_detail(model.nodes[name], model.commands_of(name), now)
    return Text(f"{name} is gone", style="dim")


class DetailPane(VerticalScroll):
    """A scrolling pane (`#detail-pane`) around the detail text (`#detail`).

    It takes no focus: Tab goes between the two tables only (a third, invisible stop left no
    row highlighted and j, P, N acting on nothing). The mouse wheel still scrolls it, and Enter
    shows the whole detail.
    """

    can_focus = False

    def compose(self) -> ComposeResult:
        yield Static(id="detail")

    def on_mount(self) -> None:
        self.border_title = "detail"

    def show(self, model: FleetModel, selected: tuple[str, str] | None, now: datetime) -> None:
        detail = self.query_one("#detail", Static)
        detail.update(detail_of(model, selected, now))
        detail.refresh(layout=True)  # its height follows the content

"""The main screen's keys that open a screen: `a` add, `e` edit, Enter the full detail.

Each form sends what it holds to the manager itself and shows the manager's refusal in the
form; a success closes it with a toast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.actions import SkipAction
from textual.widgets import Input

from syncopate.errors import SyncopateError
from syncopate.tui.screens import AddProjectScreen, DetailScreen, EditProjectScreen

if TYPE_CHECKING:
    from syncopate.tui.app import SyncopateApp


def add(app: SyncopateApp) -> None:
    async def submit(spec: dict[str, Any]) -> str | None:
        try:
            answer = await app.client.add(**spec)
        except SyncopateError as exc:
            return str(exc)
        app.notify(str(answer.get("request-information") or "added"), title="add")
        return None

    app.push_screen(AddProjectScreen(submit))


def edit(app: SyncopateApp) -> None:
    if name := app.selected_project(whole=True):
        info = app.model.projects.get(name, {})
        send = lambda changes: app.client.set_project(name, **changes)  # noqa: E731
        app.push_screen(EditProjectScreen(name, info, send))


def detail(app: SyncopateApp) -> None:
    """Enter: the selected row's full-screen detail."""
    # Enter is a priority key (else a focused table would take it): in a dialog, or in the
    # filter box, it stays theirs.
    if app.screen is not app.screen_stack[0] or isinstance(app.focused, Input):
        raise SkipAction
    if app.selected is None:
        app.notify("select a node or a project first", severity="warning")
        return
    app.push_screen(DetailScreen(app.model, app.client, app.clock, *app.selected))

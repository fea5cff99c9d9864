"""The command palette's own entries: every shown key's action, and "go to" each node and
project (Textual's system commands stay beside them)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from textual.app import SystemCommand
from textual.binding import Binding
from textual.screen import Screen

if TYPE_CHECKING:
    from syncopate.tui.app import SyncopateApp


def palette_commands(app: SyncopateApp, screen: Screen[object]) -> Iterable[SystemCommand]:
    """The palette entries for `app`: its shown bindings, then a "go to" per node and project.

    None over a dialog or the full-screen detail (`screen`): they would act on the main screen
    hidden behind it.
    """
    if screen is not app.screen_stack[0]:
        return
    for binding in app.BINDINGS:
        if isinstance(binding, Binding) and binding.show:
            action = binding.action
            yield SystemCommand(
                binding.description,
                f"key {binding.key_display or binding.key}",
                lambda action=action: app.run_action(action),
            )
    for name in sorted(app.model.nodes):
        yield SystemCommand(
            f"go to node {name}", "select it", lambda n=name: app.jump_to("nodes", n)
        )
    for name in sorted(app.model.projects):
        yield SystemCommand(
            f"go to project {name}", "select it", lambda n=name: app.jump_to("projects", n)
        )

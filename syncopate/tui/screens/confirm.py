"""The yes/no dialog, and the questions the main screen asks before a change it cannot undo."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static


class ConfirmScreen(ModalScreen[bool]):
    """A question with Cancel (focused) and a confirm button.

    `y` confirms and `n` or Esc cancels, as in k9s and lazydocker; the line left of the buttons
    says so. Cancel has the focus, so an Enter pressed out of habit changes nothing.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "confirm", "Yes"),
        Binding("n", "cancel", "No"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, title: str, body: str, confirm: str) -> None:
        super().__init__()
        self.title_text, self.body, self.confirm = title, body, confirm

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="confirm"):
            yield Label(self.title_text, id="title")
            yield Static(self.body, id="body")
            with Horizontal(id="buttons"):
                yield Label("y yes · n no", id="keys")
                yield Button("Cancel", id="cancel")
                yield Button(self.confirm, id="confirm", variant="error")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    @on(Button.Pressed, "#confirm")
    def action_confirm(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(False)


def reset_question(name: str, info: Mapping[str, Any]) -> str:
    initial = info.get("initial_variables") or {}
    return (
        f"Reset {name}: its persistent variables go back to their initial values "
        f"{_compact(initial)} and it restarts with them. Its current variables are lost."
    )


def remove_question(name: str, info: Mapping[str, Any]) -> str:
    node = info.get("node")
    where = f"stops it on {node}, deletes its checkout there" if node else "it runs nowhere"
    return (
        f"Remove {name} ({info.get('project-url')}): {where}, and forgets it with its "
        "persistent variables and kept output. This cannot be undone."
    )


def drain_question(node: str, info: Mapping[str, Any]) -> str:
    placed = list(info.get("projects") or [])
    if not placed:
        return f"Drain {node}: no new projects go there; it has no projects to move."
    if len(placed) == 1:
        moves = f"its project {placed[0]} stops and moves to another node with its variables"
    else:
        moves = f"its {len(placed)} projects stop and move to other nodes with their variables"
    return f"Drain {node}: no new projects go there, and {moves}."


def undrain_question(node: str, info: Mapping[str, Any]) -> str:
    return (
        f"Undrain {node}: it takes projects again; projects waiting for a place may start there "
        "and the fleet may balance onto it."
    )


def forget_question(node: str, info: Mapping[str, Any]) -> str:
    placed = list(info.get("projects") or [])
    if not placed:
        moved = "it has no projects"
    elif len(placed) == 1:
        moved = f"its project {placed[0]} moves to another node"
    else:
        moved = f"its {len(placed)} projects move to other nodes"
    return (
        f"Forget {node}: its record goes and its token stops working; {moved}. "
        "An agent that comes back must join again."
    )


def _compact(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:79] + "…"

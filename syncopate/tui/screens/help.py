"""Every key of the main screen and what it does."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static

KEY_NAMES = {"slash": "/", "question_mark": "?", "colon": ":", "escape": "Esc", "enter": "Enter"}


class HelpScreen(ModalScreen[None]):
    """Every key and what it does."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("question_mark", "close", "Close", show=False),
        Binding("q", "close", "Close", show=False),
    ]

    def __init__(self, bindings: Iterable[BindingType]) -> None:
        super().__init__()
        self.bindings = [b for b in bindings if isinstance(b, Binding) and b.show]

    def compose(self) -> ComposeResult:
        text = Text()
        for binding in self.bindings:
            key = KEY_NAMES.get(binding.key, binding.key)
            text.append(f"{key:>8}  ", style="bold")
            text.append(f"{binding.description:<9}", style="bold")
            text.append(f"{binding.tooltip}\n")
        # One line each, so the whole list fits 24 lines (the dialog scrolls past that).
        text.append(f"{'Tab j k':>8}  ", style="bold")
        text.append(f"{'':<9}Tab: the other table · j k: down, up (as the arrows)\n")
        text.append(f"{'ctrl+p :':>8}  ", style="bold")
        text.append(f"{'Palette':<9}", style="bold")
        text.append("every action, and go to a node or project\n")
        text.append(f"{'Esc':>8}  ", style="bold")
        text.append(f"{'':<9}clear the filter; close a dialog or the detail\n")
        text.append("Click a column's header to sort by it (again: reverse).", style="dim")
        with Vertical(id="dialog", classes="help"):
            yield Label("Keys — Esc closes", id="title")
            yield Static(text)

    def action_close(self) -> None:
        self.dismiss(None)

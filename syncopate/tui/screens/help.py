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

from syncopate.tui.sort_keys import help_lines

KEY_NAMES = {"slash": "/", "question_mark": "?", "colon": ":", "escape": "Esc", "enter": "Enter"}


class HelpScreen(ModalScreen[None]):
    """Every key and what it does."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("question_mark", "close", "Close", show=False),
        Binding("q", "close", "Close", show=False),
    ]

    def __init__(self, bindings: Iterable[BindingType], notes: Iterable[str] = ()) -> None:
        """`notes`: lines shown before the keys (the demo's tokens and pids)."""
        super().__init__()
        self.bindings = [b for b in bindings if isinstance(b, Binding) and b.show]
        self.notes = list(notes)

    def compose(self) -> ComposeResult:
        text = Text()
        if self.notes:
            # What the demo printed before the TUI covered the terminal: first, so it shows.
            text.append("\n".join(self.notes) + "\n\n", style="bold")
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
        # Shift+letter sorts the focused table (tui/sort_keys.py), as a click on its header does.
        for number, line in enumerate(help_lines()):
            text.append(f"{'Shift+' if number == 0 else '':>8}  ", style="bold")
            text.append(f"{'Sort' if number == 0 else '':<9}", style="bold")
            text.append(line + ("\n" if number == 0 else ""))
        with Vertical(id="dialog", classes="help"):
            title = "This demo, and the keys" if self.notes else "Keys"
            yield Label(f"{title} — Esc closes", id="title")
            yield Static(text)

    def action_close(self) -> None:
        self.dismiss(None)

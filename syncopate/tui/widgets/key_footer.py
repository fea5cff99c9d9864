"""The main screen's footer: the keys that matter most, whole, as many as the width holds.

Textual's own footer shows the keys in the order they are bound and cuts the line at the
screen's edge: at 80 columns `D Drain` and `q Quit` fell off, and the last key showed half.
This one orders the keys by PRIORITY and leaves out, whole, those that do not fit; `? Help`
(second) lists every key.
"""

from __future__ import annotations

from rich.cells import cell_len
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

# Actions, most useful first. An action not named here comes after them, in binding order.
# "detail" is Enter's full-screen detail, wherever the app binds it.
PRIORITY = (
    "quit",
    "help",
    "filter",
    "detail",
    "add",
    "start",
    "stop",
    "restart",
    "logs",
    "drain",
    "edit",
    "remove",
    "reset",
    "command",
    "undrain",
    "forget",
)


def rank(action: str) -> int:
    return PRIORITY.index(action) if action in PRIORITY else len(PRIORITY)


def key_width(key: str, description: str) -> int:
    """Columns a compact footer key takes: `key description` and the one-column gap after it."""
    return cell_len(key) + (1 + cell_len(description) if description else 0) + 1


class KeyFooter(Footer):
    """A compact footer of the shown bindings in PRIORITY order, cut at a whole key."""

    def __init__(self) -> None:
        super().__init__(compact=True, show_command_palette=False)
        self.composed_width = 0

    def shown(self) -> list[tuple[Binding, bool, str]]:
        """The screen's shown bindings, one per action, in PRIORITY order (a stable sort)."""
        seen: dict[str, tuple[Binding, bool, str]] = {}
        for _, binding, enabled, tooltip in self.screen.active_bindings.values():
            if binding.show and binding.action not in seen:
                seen[binding.action] = (binding, enabled, tooltip)
        return sorted(seen.values(), key=lambda item: rank(item[0].action))

    def compose(self) -> ComposeResult:
        if not self._bindings_ready:
            return
        # Laid out or not yet: the footer spans the screen.
        width = self.size.width or self.screen.size.width
        self.composed_width = width
        used = 0
        for binding, enabled, tooltip in self.shown():
            display = self.app.get_key_display(binding)
            need = key_width(display, binding.description)
            if used + need - 1 > width:  # the last key needs no gap after it
                break
            used += need
            yield FooterKey(
                binding.key,
                display,
                binding.description,
                binding.action,
                disabled=not enabled,
                tooltip=tooltip or binding.tooltip,
            ).data_bind(compact=Footer.compact)

    def on_resize(self, event: events.Resize) -> None:
        if event.size.width != self.composed_width:
            self.call_after_refresh(self.recompose)

"""The filter line of the main screen: hidden until `/`, it filters both tables as you type."""

from __future__ import annotations

from collections.abc import Callable

from textual import on
from textual.timer import Timer
from textual.widgets import Input

from syncopate.tui.model import FleetModel

FILTER_DELAY = 0.15  # seconds of no typing before the filter applies


class FilterBox(Input):
    """`#filter`: the text applies after a pause in typing; Enter keeps it and closes the box.

    `apply(text)` sets the model's filter and refills the tables; `close()` hides the box.
    """

    def __init__(
        self, model: FleetModel, apply: Callable[[str], None], close: Callable[[], None]
    ) -> None:
        super().__init__(
            placeholder="filter by name, node or status — Enter keeps it, Esc clears it",
            id="filter",
        )
        self.model = model
        self._apply = apply
        self._close = close
        self._timer: Timer | None = None

    def open(self) -> None:
        """Show the box with the current filter, and type into it."""
        self.display = True
        self.value = self.model.filter
        self.focus()

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        # Typing is batched: refilling 5,000 rows on every keystroke would lag behind the keys.
        if self._timer is not None:
            self._timer.stop()
        value = event.value
        self._timer = self.set_timer(FILTER_DELAY, lambda: self._apply_if_new(value))

    @on(Input.Submitted)
    def _kept(self, event: Input.Submitted) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._apply_if_new(event.value)
        self._close()

    def _apply_if_new(self, text: str) -> None:
        if text != self.model.filter:
            self._apply(text)

"""Toasts that do not pile up: at most MAX_TOASTS at a time, the newest, shown briefly.

Textual stacks every notification until its timeout: a few quick actions put a column of toasts
over the tables. Here a new toast pushes out the oldest beyond MAX_TOASTS and any earlier one
with the same words; the stylesheet (syncopate.tcss, `Toast`) keeps each as high as its text
(a title line and most messages in one or two more), so together they stay over the detail
pane, above the footer, clear of the tables at 80x24.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import App
from textual.notifications import Notify

MAX_TOASTS = 2


class FewToastsApp(App[None]):
    """An App whose toasts are few and short-lived."""

    NOTIFICATION_TIMEOUT: ClassVar[float] = 3.0  # seconds; errors ask for longer themselves

    def _on_notify(self, event: Notify) -> None:
        # Make room for the new toast. No super() call: Textual runs the handler of every class
        # in the MRO, so App._on_notify (which adds the toast and shows the lot) runs next.
        new = event.notification
        shown = list(self._notifications)
        repeats = [n for n in shown if (n.title, n.message) == (new.title, new.message)]
        for old in repeats:
            shown.remove(old)
        excess = max(0, len(shown) - (MAX_TOASTS - 1))
        for old in repeats + shown[:excess]:
            self._unnotify(old, refresh=False)

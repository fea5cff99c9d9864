"""Shift+letter sorts the focused table by a column, as in k9s; the same letter again reverses.

One letter per meaning, in both tables where both have it (M: the projects' RAM and the nodes'
RAM USED). D, F and R are the app's own keys (drain, forget, reset), so disk is K.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text

from syncopate.tui.rows import Column


@dataclass(frozen=True)
class SortKey:
    letter: str
    meaning: str
    projects: str | None  # the column key it sorts the projects table by; None: no such column
    nodes: str | None

    def column(self, kind: str) -> str | None:
        return self.projects if kind == "projects" else self.nodes


SORT_KEYS = (
    SortKey("N", "name", "name", "name"),
    SortKey("S", "status", "status", "status"),
    SortKey("M", "memory", "ram", "ram"),
    SortKey("C", "cpu", None, "cpu"),
    SortKey("K", "disk", "disk", "storage"),
    SortKey("U", "age", "up", "contact"),  # how long up; how long since the node's contact
    SortKey("O", "node", "node", None),
    SortKey("X", "restarts", "restarts", None),
    SortKey("P", "projects", None, "projects"),
)
BY_LETTER = {key.letter: key for key in SORT_KEYS}
UP, DOWN = "↑", "↓"


def header(column: Column, sort_by: tuple[str, bool]) -> Text:
    """A column's header; the sorted one ends with an arrow (↑ ascending, ↓ reversed), in place
    of its last letter when the column is too narrow for both."""
    key, reverse = sort_by
    if column.key != key:
        return Text(column.label)
    label = column.label if len(column.label) < column.width else column.label[: column.width - 1]
    return Text(label + (DOWN if reverse else UP), style="bold")


def help_lines() -> list[str]:
    """The keys and their columns for the help screen, in two lines (it fits 80x24)."""
    words = [f"{key.letter} {key.meaning}" for key in SORT_KEYS]
    return ["  ".join(words[:5]), "  ".join(words[5:]) + "; again: reverse"]

"""The TUI's dialogs, one per module: confirm, add a project, a project's live output, a
command, help, edit a project, the full-screen detail."""

from __future__ import annotations

from syncopate.tui.screens.add_project import AddProjectScreen
from syncopate.tui.screens.command import CommandScreen
from syncopate.tui.screens.confirm import (
    ConfirmScreen,
    drain_question,
    forget_question,
    remove_question,
    reset_question,
    undrain_question,
)
from syncopate.tui.screens.detail import DetailScreen
from syncopate.tui.screens.edit_project import EditProjectScreen
from syncopate.tui.screens.help import HelpScreen
from syncopate.tui.screens.logs import LogsScreen

__all__ = [
    "AddProjectScreen",
    "CommandScreen",
    "ConfirmScreen",
    "DetailScreen",
    "EditProjectScreen",
    "HelpScreen",
    "LogsScreen",
    "drain_question",
    "forget_question",
    "remove_question",
    "reset_question",
    "undrain_question",
]

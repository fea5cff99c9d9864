"""The root command group, whose commands' modules are imported when a command line uses them.

Every `syncopate` run is a fresh interpreter (on a Pi too), and Typer builds a click command
for every command it knows before it parses anything. With each command module imported and
built only when the command line names it, `syncopate project list` neither imports nor builds
the node, manager, command, logs, demo and TUI commands. `--help` lists every command, so it
loads them all, and shows exactly what an eagerly built group would.
"""

from __future__ import annotations

import importlib
from typing import Any

import typer
import typer.main
from typer.core import TyperGroup

# name -> (module in syncopate.cli, attribute): a Typer sub-app (a group) or a command
# function. In the order `syncopate --help` lists them (Typer's: commands, then groups).
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "demo"),
    "logs": ("logs", "logs"),
    "tui": ("tui", "tui"),
    "project": ("project", "app"),
    "node": ("node", "app"),
    "manager": ("manager", "app"),
    "command": ("command", "app"),
}


def load(name: str) -> Any:
    """The click command for root command `name`, built as `add_typer`/`command` would."""
    module, attribute = COMMANDS[name]
    found = getattr(importlib.import_module(f"syncopate.cli.{module}"), attribute)
    if isinstance(found, typer.Typer):
        command: Any = typer.main.get_group(found)  # a group: no completion options of its own
    else:
        single = typer.Typer(add_completion=False)
        single.command(name)(found)
        command = typer.main.get_command(single)
    command.name = name
    return command


class LazyGroup(TyperGroup):
    """A TyperGroup that builds each of `COMMANDS` on first use."""

    def list_commands(self, ctx: Any) -> list[str]:
        # COMMANDS' order whichever were built already, then any added the usual way.
        return [*COMMANDS, *(n for n in super().list_commands(ctx) if n not in COMMANDS)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            self.commands[cmd_name] = load(cmd_name)
        return super().get_command(ctx, cmd_name)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in COMMANDS and args[0] not in self.commands:
            # A name it does not know: Typer's "did you mean" looks among the built commands.
            for name in COMMANDS:
                self.get_command(ctx, name)
        return super().resolve_command(ctx, args)


def subcommands(command: Any) -> dict[str, Any]:
    """A click group's commands by name, a LazyGroup's built first; {} for a plain command."""
    if not hasattr(command, "list_commands"):
        return {}
    ctx = typer.Context(command)
    return {name: command.get_command(ctx, name) for name in command.list_commands(ctx)}

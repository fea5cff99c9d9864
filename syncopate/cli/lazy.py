"""Command groups that import and build each command when a command line uses it.

Every `syncopate` run is a fresh interpreter (on a Pi too), and Typer builds a click command
for every command it knows before it parses anything: it imports their modules and reads the
signature of each function. Here the root group imports a command's module only when the
command line names it, and a group such as `project` builds only the command that runs, so
`syncopate project list` neither imports nor builds the node, manager, command, logs, demo and
TUI commands, nor `project add`'s thirty options. `--help`, a group's help and a misspelt
name see every command, so they show exactly what an eagerly built group would.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable
from functools import partial
from typing import Any

import typer
import typer.main
from typer._click.exceptions import UsageError  # Typer carries its own click
from typer.core import TyperGroup
from typer.models import DefaultPlaceholder

# The root's commands: name -> (module in syncopate.cli, attribute), a Typer sub-app (a group)
# or a command function. In the order `syncopate --help` lists them (Typer's order: commands,
# then groups).
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "demo"),
    "logs": ("logs", "logs"),
    "tui": ("tui", "tui"),
    "project": ("project", "app"),
    "node": ("node", "app"),
    "manager": ("manager", "app"),
    "command": ("command", "app"),
}

# Words another tool (docker, pm2, kubectl, systemctl) takes at its root, and the command that
# does it here: `syncopate ls` is answered with `syncopate project list`, not with `logs`,
# which merely looks like it.
ROOT_WORDS: dict[str, str] = {
    **dict.fromkeys(("ls", "ps", "list", "status", "get", "projects"), "project list"),
    **dict.fromkeys(("rm", "remove", "delete", "del"), "project remove"),
    **dict.fromkeys(("show", "describe", "info", "inspect"), "project show NAME"),
    **{verb: f"project {verb}" for verb in ("add", "start", "stop", "restart", "reset", "set")},
    "run": "project add",
    "create": "project add",
    "nodes": "node list",
    "top": "tui",
    "monit": "tui",
}


class LazyGroup(TyperGroup):
    """A TyperGroup whose commands in `pending` (name -> builder) are built on first use."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.pending: dict[str, Callable[[], Any]] = {}

    def list_commands(self, ctx: Any) -> list[str]:
        # The pending ones in their order whichever were built already, then the others.
        built = super().list_commands(ctx)
        return [*self.pending, *(n for n in built if n not in self.pending)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        build = self.pending.get(cmd_name)
        if cmd_name not in self.commands and build is not None:
            self.commands[cmd_name] = build()
        return super().get_command(ctx, cmd_name)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in self.commands and args[0] not in self.pending:
            # A name it does not know: Typer's "did you mean" looks among the built commands.
            for name in self.pending:
                self.get_command(ctx, name)
        return super().resolve_command(ctx, args)


class RootGroup(LazyGroup):
    """The `syncopate` group (main.py's `cls`): each of COMMANDS imported on first use."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.pending = {name: partial(load, name) for name in COMMANDS}

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except UsageError as exc:
            meant = ROOT_WORDS.get(args[0].lower()) if args else None
            if meant is not None:
                exc.message = f"No such command {args[0]!r}. Did you mean 'syncopate {meant}'?"
            raise


def load(name: str) -> Any:
    """The click command for root command `name`, built as `add_typer`/`command` would."""
    module, attribute = COMMANDS[name]
    found = getattr(importlib.import_module(f"syncopate.cli.{module}"), attribute)
    if isinstance(found, typer.Typer):
        command = group(found)
    else:
        single = typer.Typer(add_completion=False)
        single.command(name)(found)
        command = typer.main.get_command(single)
    command.name = name
    return command


def group(app: typer.Typer) -> Any:
    """The click group of sub-app `app` (as `add_typer` makes it), its commands built lazily."""
    cls = app.info.cls
    lazy = isinstance(cls, type) and issubclass(cls, LazyGroup)  # cli/helpstyle.py's aliased
    if app.registered_groups or not (lazy or isinstance(cls, DefaultPlaceholder)):
        return typer.main.get_group(app)  # not a shape this knows: built the usual way
    shell = copy.copy(app)  # the same group with no commands, made a LazyGroup
    shell.registered_commands = []
    shell.info = copy.copy(app.info)
    shell.info.cls = cls if lazy else LazyGroup
    made = typer.main.get_group(shell)
    assert isinstance(made, LazyGroup)
    for info in app.registered_commands:
        assert info.callback is not None
        name = info.name or typer.main.get_command_name(info.callback.__name__)
        made.pending[name] = partial(
            typer.main.get_command_from_info,
            info,
            pretty_exceptions_short=app.pretty_exceptions_short,
            rich_markup_mode=app.rich_markup_mode,
        )
    return made


def subcommands(command: Any) -> dict[str, Any]:
    """A click group's commands by name, a LazyGroup's built first; {} for a plain command."""
    if not hasattr(command, "list_commands"):
        return {}
    ctx = typer.Context(command)
    return {name: command.get_command(ctx, name) for name in command.list_commands(ctx)}

"""How `--help` reads, and command aliases: what Typer's defaults get wrong for this CLI.

Typer (0.2x) shows a `<bool>` type beside every flag, `<str>` beside every argument, and
arguments in the usage line as `{name} {url}`. Here the usage line reads
`syncopate project add [OPTIONS] NAME URL`, as click and man pages write it, and flags and
arguments show no type: their names and help say it.
Typer builds its parameters itself (no hook takes a class of ours), so `apply()` replaces
those three methods on its parameter classes; tests/integration/test_cli_80.py checks the
help text itself, which fails if a Typer upgrade moves them. (Help keeps a docstring's line
breaks: a command's docstring keeps its lines under 78 characters, to read well at 80.)

`aliased(...)` makes a group class that also takes short names (`ls` for `list`) and
suggests the command a user of docker, pm2 or kubectl typed by another name (`ps`).
"""

from __future__ import annotations

import difflib
from typing import Any

import typer.core
from typer import _click as click  # Typer carries its own click

from syncopate.cli.lazy import LazyGroup


def _argument_name(self: typer.core.TyperArgument) -> str:
    """An argument's name in help and errors: its metavar, else its name in capitals."""
    return self.metavar if self.metavar is not None else str(self.name).upper()


def _argument_usage(self: typer.core.TyperArgument) -> str:
    name = _argument_name(self)
    shown = name if self.required else f"[{name}]"
    return shown if self.nargs == 1 else shown + "..."


def _argument_type(self: typer.core.TyperArgument, ctx: click.Context) -> str | None:
    # The name (NAME, URL, ID) and its help say what it is; `<str>` or `<int>` adds nothing.
    return None


_option_type = typer.core.TyperOption.display_type_rich


def _option_type_unless_flag(self: typer.core.TyperOption, ctx: click.Context) -> str | None:
    if self.is_flag and not self.count:  # a flag takes no value: no `<bool>`
        return None
    return _option_type(self, ctx)


def apply() -> None:
    """Make Typer's help read as the module says (idempotent)."""
    argument: Any = typer.core.TyperArgument
    argument.display_name_raw = property(_argument_name)
    argument._usage_display_name = _argument_usage
    argument.display_type_rich = _argument_type
    option: Any = typer.core.TyperOption
    option.display_type_rich = _option_type_unless_flag


# Words from other tools' command lines, and the command that does it here.
OTHER_TOOLS = {
    "ps": "list",
    "status": "list",
    "get": "list",
    "delete": "remove",
    "del": "remove",
    "describe": "show",
    "info": "show",
    "inspect": "show",
}


def aliased(aliases: dict[str, str]) -> type[LazyGroup]:
    """A group class in which each of `aliases` (`ls`) runs the command it names (`list`).

    Aliases are not listed in the help (the command's own help line names them) and are not
    offered as "did you mean"; a word another tool uses (`ps`, `delete`) that is not a
    command here is answered with the command that does it. The group builds each command
    when it is used (cli/lazy.py).
    """

    class AliasedGroup(LazyGroup):
        def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
            command: click.Command | None = super().get_command(
                ctx, aliases.get(cmd_name, cmd_name)
            )
            return command

        def resolve_command(
            self, ctx: click.Context, args: list[str]
        ) -> tuple[str | None, click.Command | None, list[str]]:
            if args and args[0] in aliases:
                args = [aliases[args[0]], *args[1:]]
            try:
                # Typer's own suggestion (resolve_command) would not know the other tools' words.
                return self._click_resolve_command(ctx, args)
            except click.exceptions.UsageError as exc:
                typed = args[0] if args else ""
                exc.message = _suggest(exc.message, typed, self.list_commands(ctx))
                raise

    return AliasedGroup


def _suggest(message: str, typed: str, commands: list[str]) -> str:
    """`message` with a "did you mean" when `typed` is close to a command or another tool's."""
    known = OTHER_TOOLS.get(typed.lower())
    close = [known] if known in commands else difflib.get_close_matches(typed, commands)
    if not close:
        return message
    return f"{message.rstrip('.')}. Did you mean {' or '.join(repr(c) for c in close)}?"

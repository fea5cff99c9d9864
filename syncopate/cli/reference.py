"""The command reference, generated from the CLI itself, for the README.

    python -m syncopate.cli.reference          # prints the block the README carries

A test compares the README's block with this output, so the README cannot drift from the
commands (their arguments, options and one-line help).
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from typing import Any

MANAGER_PANEL = "Manager"
WIDTH = 96
SKIPPED = {"help", "install_completion", "show_completion", "version"}


def _commands(command: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
    from syncopate.cli.lazy import subcommands

    children = subcommands(command)
    if children:
        for name in sorted(children):
            yield from _commands(children[name], [*path, name])
    else:
        yield path, command


def _usage(param: Any) -> str:
    if param.param_type_name == "argument":
        name = (param.metavar or param.name).upper()
        if param.nargs == -1:
            return f"[{name.rstrip('S')} ...]"
        return name if param.required else f"[{name}]"
    option = max(param.opts, key=len)
    if getattr(param, "is_flag", False):
        return f"[{option}]"
    value = param.metavar or param.name.upper().replace("_", "-")
    more = " ..." if getattr(param, "multiple", False) else ""
    shown = f"{option} {value}{more}"
    return shown if param.required else f"[{shown}]"


def reference() -> str:
    """Every command: its synopsis, and its help's first line below it."""
    import typer.main

    from syncopate.cli.main import app

    root = typer.main.get_command(app)
    blocks = []
    for path, command in _commands(root, ["syncopate"]):
        pieces = []
        manager = False
        for param in command.params:
            if param.name in SKIPPED:
                continue
            if getattr(param, "rich_help_panel", None) == MANAGER_PANEL:
                manager = True
                continue
            pieces.append(_usage(param))
        if manager:
            pieces.append("[manager options]")
        summary = (command.help or "").strip().splitlines()[0]
        head = " ".join(path)
        # Each piece stays whole on its line: no-break spaces inside it while filling.
        synopsis = textwrap.fill(
            " ".join([head, *(piece.replace(" ", "\u00a0") for piece in pieces)]),
            width=WIDTH,
            subsequent_indent=" " * (len(head) + 1),
            break_on_hyphens=False,
            break_long_words=False,
        )
        blocks.append(f"{synopsis.replace(chr(0xA0), ' ')}\n    {summary}")
    blocks.append(
        "manager options: --manager URL --token T [--ca-file F | --fingerprint sha256:...]\n"
        "    else SYNCOPATE_MANAGER, SYNCOPATE_TOKEN (SYNCOPATE_CA_FILE, SYNCOPATE_FINGERPRINT),\n"
        "    else the controller.json of the manager on this machine"
    )
    return "\n".join(blocks) + "\n"


if __name__ == "__main__":
    print(reference(), end="")

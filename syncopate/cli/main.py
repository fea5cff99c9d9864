"""The root of the `syncopate` command: global options and the command groups."""

from __future__ import annotations

import sys

import typer

from syncopate import __version__
from syncopate.cli import command, demo, logs, manager, node, project, tui
from syncopate.errors import SyncopateError

app = typer.Typer(
    name="syncopate",
    help="Run long-lived git projects across a fleet of small computers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(project.app, name="project")
app.add_typer(node.app, name="node")
app.add_typer(manager.app, name="manager")
app.add_typer(command.app, name="command")
app.command("demo")(demo.demo)
app.command("logs")(logs.logs)
app.command("tui")(tui.tui)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"syncopate {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Run long-lived git projects across a fleet of small computers."""


def run() -> None:
    """Entry point: run the app; a SyncopateError becomes one line on stderr and exit 1.

    Typer's standalone mode handles usage errors (exit 2) and Ctrl-C itself.
    """
    try:
        app()
    except SyncopateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)

"""The root of the `syncopate` command: global options and the command groups."""

from __future__ import annotations

import sys

import typer

from syncopate import __version__
from syncopate.cli import coercion, helpstyle
from syncopate.cli.lazy import RootGroup
from syncopate.cli.output import print_error, wants_json
from syncopate.errors import RequestError, SyncopateError

helpstyle.apply()  # before any help is drawn: NAME URL in usage lines, no <bool>
# Before any command line is parsed: values that need no coercion skip Typer's pydantic layer.
coercion.install()

app = typer.Typer(
    name="syncopate",
    help="Run long-lived git projects across a fleet of small computers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Its commands (cli/lazy.py's COMMANDS) are imported and built when a command line uses them.
    cls=RootGroup,
)


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

    Typer's standalone mode handles usage errors (exit 2) and Ctrl-C itself. Under --json
    every failure, usage errors too, is one JSON object on stdout instead (cli/output.py).
    """
    if wants_json(sys.argv[1:]):
        sys.exit(_run_json())
    try:
        app()
    except SyncopateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)


def _run_json() -> int:
    """Run the app for a --json command line; the exit status.

    Not standalone, so that usage errors come here to be shown as JSON rather than as
    Typer's box of text.
    """
    try:
        status = app(standalone_mode=False)
    except SyncopateError as exc:
        print_error(str(exc), error_code(exc))
        return 1
    except typer.TyperException as exc:  # a usage error: a missing argument, a bad value
        format_message = getattr(exc, "format_message", None)
        status = int(getattr(exc, "exit_code", 2))
        print_error(format_message() if format_message else str(exc), status)
        return status
    except typer.Abort:
        print_error("interrupted", 130)
        return 130
    return status if isinstance(status, int) else 0


def error_code(exc: SyncopateError) -> int:
    """The `code` of a failure under --json: the manager's for a refusal, else 1."""
    if isinstance(exc, RequestError):
        return exc.code if exc.code else exc.status
    code = getattr(exc, "code", None)  # CommandFailed's
    return code if isinstance(code, int) and code else 1

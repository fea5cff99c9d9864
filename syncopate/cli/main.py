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
    """Entry point: run the app; any failure is one `error: ...` line on stderr (README).

    Not Typer's standalone mode, which draws a usage error in a box: here a usage error (a
    missing argument, a bad value, no such command) is one line and exit 2, any other failure
    one line and exit 1. Under --json each failure is also one JSON object on stdout
    (cli/output.py).
    """
    sys.exit(_run(wants_json(sys.argv[1:])))


def _run(as_json: bool) -> int:
    """Run the app; the exit status. Failures are shown as `run` says."""
    try:
        status = app(standalone_mode=False)
    except SyncopateError as exc:
        return _failed(str(exc), error_code(exc), 1, as_json)
    except typer.TyperException as exc:  # a usage error: a missing argument, a bad value
        format_message = getattr(exc, "format_message", None)
        code = int(getattr(exc, "exit_code", 2))
        return _failed(format_message() if format_message else str(exc), code, code, as_json)
    except typer.Abort:
        return _failed("interrupted", 130, 130, as_json)
    return status if isinstance(status, int) else 0


def _failed(message: str, code: int, status: int, as_json: bool) -> int:
    """Say what failed (`code` is --json's) and give the exit status, `status`."""
    if as_json:
        print_error(message, code)
    elif message:  # none when a group given no command has printed its help
        print(f"error: {message}", file=sys.stderr)
    return status


def error_code(exc: SyncopateError) -> int:
    """The `code` of a failure under --json: the manager's for a refusal, else 1."""
    if isinstance(exc, RequestError):
        return exc.code if exc.code else exc.status
    code = getattr(exc, "code", None)  # CommandFailed's
    return code if isinstance(code, int) and code else 1

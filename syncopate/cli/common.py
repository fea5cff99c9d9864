"""What every controller command shares: the manager options, one call, friendly errors, output.

    @app.command("list")
    def list_projects(
        as_json: bool = JSON_OPTION,
        manager: ManagerOption = None,
        token: TokenOption = None,
        ca_file: CaFileOption = None,
        fingerprint: FingerprintOption = None,
    ) -> None:
        target = find_target(manager, token, ca_file, fingerprint)
        answer = call(target, lambda c: c.status())

The four `Annotated` option types give every controller command the same `--manager`,
`--token`, `--ca-file` and `--fingerprint` (in the help's "Manager" panel); `find_target`
resolves them, with the environment and the local manager's controller.json, to a `Target`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from syncopate.cli.output import named_list
from syncopate.cli.output import print_json as print_json  # re-exported for the commands
from syncopate.cli.reference import MANAGER_PANEL
from syncopate.cli.target import Target
from syncopate.errors import (
    HungUp,
    NotFound,
    ProtocolError,
    SyncopateError,
    Unauthorized,
    Unreachable,
)

if TYPE_CHECKING:  # imported by the functions that use it: `node join` and --help need neither
    from syncopate.client import ManagerClient

T = TypeVar("T")

JSON_OPTION: Any = typer.Option(False, "--json", help="Print JSON for scripts instead of a table.")


def _manager_option(flag: str, metavar: str, help: str) -> Any:
    # The README reference folds the options of this panel into one "[manager options]".
    return typer.Option(
        flag, metavar=metavar, help=help, rich_help_panel=MANAGER_PANEL, show_default=False
    )


ManagerOption = Annotated[
    str | None,
    _manager_option(
        "--manager",
        "URL",
        "The manager's URL (env SYNCOPATE_MANAGER; default: the manager on this machine)",
    ),
]
TokenOption = Annotated[
    str | None, _manager_option("--token", "T", "Controller token (env SYNCOPATE_TOKEN)")
]
CaFileOption = Annotated[
    str | None,
    _manager_option(
        "--ca-file", "F", "CA certificate to verify an https manager (env SYNCOPATE_CA_FILE)"
    ),
]
FingerprintOption = Annotated[
    str | None,
    _manager_option(
        "--fingerprint",
        "sha256:...",
        "An https manager's pinned certificate fingerprint (env SYNCOPATE_FINGERPRINT)",
    ),
]


class CommandFailed(SyncopateError):
    """A controller command failed; the message says what happened and what to do.

    `code` is the manager's code for a refusal (its HTTP status), else 1 (README: `--json`).
    """

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def usage_error(message: str) -> Exception:
    """A usage error to raise: `error: message` and exit 2, as Typer's own (README, "Commands")."""
    from typer._click.exceptions import UsageError  # Typer carries its own click

    return UsageError(message)


def names_or_all(names: Sequence[str] | None, every: bool, what: str) -> None:
    """Names or --all, exactly one: else a usage error that fits the case.

    `what` says what to name (`name the projects to stop`). Every project only when asked for
    with --all (DESIGN section 8: the wire's empty list still means all, for the seed's clients).
    """
    if names and every:
        raise usage_error(f"{what} or give --all, not both")
    if not names and not every:
        raise usage_error(f"{what}, or give --all")


def call(target: Target, action: Callable[[ManagerClient], Awaitable[T]]) -> T:
    """Run one exchange with the manager; errors come out as one actionable line."""
    import asyncio

    from syncopate.client import ManagerClient

    async def exchange() -> T:
        async with ManagerClient(
            target.url, target.token, ca_file=target.ca_file, fingerprint=target.fingerprint
        ) as client:
            return await action(client)

    try:
        return asyncio.run(exchange())
    except Unauthorized:  # a refused token: on /controller, or on /events (`--follow`)
        raise CommandFailed(refused_message(target), code=401) from None
    except Unreachable as exc:
        raise CommandFailed(
            f"{exc}{https_hint(target, exc)}; is it running? (`syncopate manager serve`; "
            f"manager from {target.source})"
        ) from None
    except ProtocolError as exc:
        hint = https_hint(target, exc)
        if not hint:
            raise
        raise CommandFailed(f"{exc}{hint}") from None


def refused_message(target: Target) -> str:
    """What a refused controller token says. The main token, read from this machine's
    controller.json, was rotated: `manager token` prints the new one. A token given (--token,
    SYNCOPATE_TOKEN) is a person's, revoked, rotated or mistyped: only an admin makes another
    (pointing a viewer at the main token would point them at the admin's)."""
    if target.token_source in ("--token", "SYNCOPATE_TOKEN", ""):
        return (
            f"the manager at {target.url} refused the controller token (from "
            f"{target.token_source or 'the command line'}): it was revoked, rotated or is wrong; "
            "ask the manager's admin for a token (`syncopate manager token --user NAME`)"
        )
    return (
        f"the manager at {target.url} refused the controller token "
        f"(from {target.token_source}); `syncopate manager token` on the manager's machine "
        "prints the current one"
    )


def https_hint(target: Target, exc: SyncopateError) -> str:
    """`; if it serves HTTPS, use https://...` when plain HTTP met a closed connection or an
    answer that is not HTTP: what a manager serving HTTPS does to a plain request."""
    if not target.url.startswith("http://") or not isinstance(exc, HungUp | ProtocolError):
        return ""
    return f"; if it serves HTTPS, use https://{target.url.removeprefix('http://')}"


async def explain_missing(client: ManagerClient, exc: NotFound, name: str, kind: str) -> NotFound:
    """The 404 with a `did you mean` for a misspelt project or node name."""
    return await explain_first_missing(client, exc, [name], kind)


async def explain_first_missing(
    client: ManagerClient, exc: NotFound, names: Sequence[str], kind: str
) -> NotFound:
    """The 404 for the first of `names` the manager does not know, with a `did you mean`.

    `exc` itself when the names cannot be checked, or the manager knows them all.
    """
    try:
        known = list(await client.status()) if kind == "project" else list(await client.nodes())
    except SyncopateError:
        return exc
    name = next((n for n in names if n not in known), None)
    if name is None:
        return exc
    import difflib

    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        return NotFound(f"no {kind} named {name!r}; did you mean {close[0]!r}?")
    if not known:
        return NotFound(f"no {kind} named {name!r}; there are no {kind}s yet")
    return NotFound(f"no {kind} named {name!r}; `syncopate {kind} list` shows them")


def print_listing(
    items: Any, as_json: bool, empty: str, table: Callable[[Any], Any], kind: str
) -> None:
    """A `list` command's output: JSON for scripts, `empty` when there is nothing, else a table.

    `kind` ("project", "node") says which of output.RENAMES the JSON takes.
    """
    if as_json:
        print_json(named_list(items, kind))
        return
    if not items:
        typer.echo(empty)
        return
    from rich.console import Console

    Console().print(table(items))

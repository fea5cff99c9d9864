"""What every controller command shares: the manager options, one call, friendly errors, output.

    @app.command("list")
    @controller_command
    def list_projects(target: Target, as_json: bool = JSON_OPTION) -> None:
        answer = call(target, lambda c: c.status())

`controller_command` adds `--manager`, `--token`, `--ca-file` and `--fingerprint` to the command
(Typer reads the signature) and hands the command the `Target` they resolve to, so each command
declares only its own options.
"""

from __future__ import annotations

import asyncio
import difflib
import functools
import inspect
import json
import sys
import typing
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, TypeVar

import typer

from syncopate.cli.target import Target, find_target
from syncopate.client import ManagerClient
from syncopate.errors import NotFound, SyncopateError, TokenRefused, Unreachable

T = TypeVar("T")

JSON_OPTION: Any = typer.Option(False, "--json", help="Print JSON for scripts instead of a table.")

ManagerOption = Annotated[
    str | None,
    typer.Option(
        "--manager",
        help="The manager's URL (env SYNCOPATE_MANAGER; default: the manager on this machine)",
        rich_help_panel="Manager",
        show_default=False,
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        help="Controller token (env SYNCOPATE_TOKEN)",
        rich_help_panel="Manager",
        show_default=False,
    ),
]
CaFileOption = Annotated[
    str | None,
    typer.Option(
        "--ca-file",
        help="CA certificate to verify an https manager (env SYNCOPATE_CA_FILE)",
        rich_help_panel="Manager",
        show_default=False,
    ),
]
FingerprintOption = Annotated[
    str | None,
    typer.Option(
        "--fingerprint",
        help="Pinned sha256: fingerprint of an https manager (env SYNCOPATE_FINGERPRINT)",
        rich_help_panel="Manager",
        show_default=False,
    ),
]
_MANAGER_PARAMS = (
    ("manager", ManagerOption),
    ("token", TokenOption),
    ("ca_file", CaFileOption),
    ("fingerprint", FingerprintOption),
)


class CommandFailed(SyncopateError):
    """A controller command failed; the message says what happened and what to do."""


def controller_command(func: Callable[..., T]) -> Callable[..., T]:
    """Give a command the manager options; it receives the resolved `target` instead."""
    signature = inspect.signature(func)
    # Annotations resolved against the command's own module: Typer evaluates them again
    # against this module's globals otherwise.
    hints = typing.get_type_hints(func, include_extras=True)
    own = [
        p.replace(annotation=hints.get(p.name, p.annotation))
        for p in signature.parameters.values()
        if p.name != "target"
    ]
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=kind)
        for name, kind in _MANAGER_PARAMS
    ]

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        options = {name: kwargs.pop(name, None) for name, _ in _MANAGER_PARAMS}
        return func(*args, target=find_target(**options), **kwargs)

    # Typer builds the command line from this signature and these annotations.
    parameters = [*own, *added]
    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=parameters, return_annotation=None
    )
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    del wrapper.__wrapped__  # or inspect.signature would follow it back to `func`
    return wrapper


def call(target: Target, action: Callable[[ManagerClient], Awaitable[T]]) -> T:
    """Run one exchange with the manager; errors come out as one actionable line."""

    async def exchange() -> T:
        async with ManagerClient(
            target.url, target.token, ca_file=target.ca_file, fingerprint=target.fingerprint
        ) as client:
            return await action(client)

    try:
        return asyncio.run(exchange())
    except TokenRefused:
        raise CommandFailed(
            f"the manager at {target.url} refused the controller token "
            f"(from {target.token_source}); `syncopate manager token` on the manager's machine "
            "prints the current one"
        ) from None
    except Unreachable as exc:
        raise CommandFailed(
            f"{exc}; is it running? (`syncopate manager serve`; manager from {target.source})"
        ) from None


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
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        return NotFound(f"no {kind} named {name!r}; did you mean {close[0]!r}?")
    if not known:
        return NotFound(f"no {kind} named {name!r}; there are no {kind}s yet")
    return NotFound(f"no {kind} named {name!r}; `syncopate {kind} list` shows them")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")

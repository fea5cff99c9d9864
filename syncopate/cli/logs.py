"""`syncopate logs PROJECT [--follow]`, `logs --all`: projects' output as kept by the manager.

The agents ship each project's new output lines, with the time each was produced, in their
reports; the manager keeps the last 1,000 per project and numbers them (`seq`), its own notes
(`[syncopate] stopped by alice`) among them. Each line is printed with its time in the local
zone (`--no-time`: as it is); `--all` prefixes each with its project and puts the projects'
kept lines in time order. `--follow` subscribes to new lines on `/events` first and then prints
the kept ones, so no line falls between the two; the numbers drop the lines that come both ways,
and after a lost connection (a manager restart) it subscribes again and prints every kept line
after the last one printed, however many came meanwhile (not just the last `--lines`).
`--lines 0` with `--follow` prints new lines only; without it, it is a usage error.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import typer

from syncopate.cli.common import (
    CaFileOption,
    CommandFailed,
    FingerprintOption,
    ManagerOption,
    TokenOption,
    call,
    explain_missing,
    names_or_all,
    print_json,
    usage_error,
)
from syncopate.cli.log_lines import Line, LinePrinter, lines_of, merged
from syncopate.cli.target import find_target
from syncopate.errors import NotFound
from syncopate.feed import FeedDropped, FeedRevoked, drop_text

if TYPE_CHECKING:  # the commands import it when they run (syncopate.cli.common.call)
    from syncopate.client import ManagerClient

# protocol.LOG_LINES_KEPT (that module imports pydantic, which the CLI does without)
LOG_LINES_KEPT = 1000
EVERY_PROJECT = "*"  # /events?logs=*: every project's output, those added later included


async def _kept(client: ManagerClient, project: str, lines: int) -> dict[str, Any]:
    try:
        return await client.logs(project, lines)
    except NotFound as exc:
        raise await explain_missing(client, exc, project, "project") from None


def _batch(answer: dict[str, Any], name: str) -> list[Line]:
    """A `logs` answer or an /events `logs` message as lines."""
    lines = list(answer.get("lines") or ())
    times = list(answer.get("times") or ())
    return lines_of(name, int(answer.get("seq") or 0), lines, times)


def with_output(projects: dict[str, Any]) -> list[str]:
    """The names whose output can be asked for: projects, and an every-node one's copies."""
    names: list[str] = []
    for name, info in sorted(projects.items()):
        copies = info.get("copies") if isinstance(info, dict) else None
        if isinstance(copies, dict):
            names.extend(f"{name}@{node}" for node in sorted(copies))
        else:
            names.append(name)
    return names


async def _kept_of_all(
    client: ManagerClient, names: list[str], lines: int, printer: LinePrinter
) -> list[Line]:
    """The last `lines` kept lines of all `names` together, in time order, not seen before.

    A project whose lines were printed already (a reconnection) gives every kept line not
    printed yet, however many: those came while the feed was away."""

    async def one(name: str) -> tuple[bool, list[Line]]:
        resumed = printer.started(name)
        with contextlib.suppress(NotFound):  # removed since the list was read
            answer = await client.logs(name, _asked(lines, resumed))
            return resumed, printer.new(_batch(answer, name))
        return resumed, []

    batches = await asyncio.gather(*(one(name) for name in names))
    fresh = merged(batch for resumed, batch in batches if not resumed)
    return merged(
        [
            fresh[-lines:] if lines else [],  # --lines 0: only where each log stands was taken
            *(batch for resumed, batch in batches if resumed),
        ]
    )


def _asked(lines: int, resumed: bool) -> int:
    """How many kept lines to ask for: all on a reconnection (to print what came meanwhile),
    one with `--lines 0` (only to learn where the log stands; it is not printed)."""
    return LOG_LINES_KEPT if resumed else max(lines, 1)


def _dropped(drop: FeedDropped, connected: bool) -> None:
    """Say that the feed was lost (it is opened again); raise when that is pointless: never
    connected (a wrong URL, a stopped manager), or closed because the token was revoked."""
    if isinstance(drop.error, FeedRevoked):
        raise CommandFailed("the controller token was revoked", code=401)
    if not connected:
        raise drop.error
    typer.secho(drop_text(drop), err=True)


async def _follow(client: ManagerClient, project: str, lines: int, printer: LinePrinter) -> None:
    connected = False

    async def show_kept(snapshot: dict[str, Any]) -> None:
        # Subscribed first: from here on new lines come to us, so none falls in between.
        resumed = printer.started(project)
        kept = printer.new(_batch(await _kept(client, project, _asked(lines, resumed)), project))
        if resumed or lines:  # --lines 0: only where the log stands was taken
            printer.print(kept)
        nonlocal connected
        connected = True

    async with contextlib.aclosing(client.follow_events([project], on_connect=show_kept)) as feed:
        async for message in feed:
            if isinstance(message, FeedDropped):
                _dropped(message, connected)
            elif message.get("type") == "logs" and message.get("project") == project:
                printer.print(printer.new(_batch(message, project)))
            elif (
                message.get("type") == "changes"
                and (message.get("projects") or {}).get(project, 1) is None
            ):
                typer.secho(f"{project} was removed", err=True)
                return


async def _follow_all(client: ManagerClient, lines: int, printer: LinePrinter) -> None:
    connected = False

    async def show_kept(snapshot: dict[str, Any]) -> None:
        nonlocal connected
        names = with_output(snapshot.get("projects") or {})
        printer.width = max([printer.width, *map(len, names)])
        printer.print(await _kept_of_all(client, names, lines, printer))
        connected = True

    feed = client.follow_events([EVERY_PROJECT], on_connect=show_kept)
    async with contextlib.aclosing(feed) as messages:
        async for message in messages:
            if isinstance(message, FeedDropped):
                _dropped(message, connected)
            elif message.get("type") == "logs":
                printer.print(printer.new(_batch(message, str(message.get("project")))))
            elif message.get("type") == "changes":
                for name, info in (message.get("projects") or {}).items():
                    if info is None and name in printer.numbered:
                        del printer.numbered[name]
                        typer.secho(f"{name} was removed", err=True)


def logs(
    project: str | None = typer.Argument(
        None, help="The project whose output to show (not with --all).", show_default=False
    ),
    every: bool = typer.Option(
        False, "--all", help="Every project's output, each line prefixed with its project."
    ),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines."),
    lines: int = typer.Option(
        200,
        "--lines",
        "-n",
        metavar="N",
        help="How many of the kept lines (0-1000; 0 with --follow: new lines only).",
    ),
    no_time: bool = typer.Option(
        False, "--no-time", help="Print the lines as they are, without their times."
    ),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="Print JSON for scripts: one object (--all: a list; with --follow: one object per "
        "line), with each line's time (ISO 8601 UTC).",
    ),
    manager: ManagerOption = None,
    token: TokenOption = None,
    ca_file: CaFileOption = None,
    fingerprint: FingerprintOption = None,
) -> None:
    """Show recent output, each line with its time: a project's, or every one's with --all.

    The manager keeps each project's last 1,000 lines, with notes of what happened among
    them: stopped by alice, moved to pi-3 (and why), new commit abc1234 (its subject)."""
    names_or_all([project] if project is not None else [], every, "name a project")
    if not 0 <= lines <= LOG_LINES_KEPT:
        raise typer.BadParameter(
            f"{lines} lines: give 0 to {LOG_LINES_KEPT} (the manager keeps the last "
            f"{LOG_LINES_KEPT} of each project)",
            param_hint="'--lines' / '-n'",
        )
    if lines == 0 and not follow:  # (a missing project would pass in silence)
        raise usage_error("--lines 0 goes with --follow: new lines only")
    target = find_target(manager, token, ca_file, fingerprint)
    printer = LinePrinter(times=not no_time, prefix=every, as_json=as_json)
    if follow:
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how following ends
            if project is None:
                call(target, lambda c: _follow_all(c, lines, printer))
            else:
                call(target, lambda c: _follow(c, project, lines, printer))
        return
    if project is None:
        _print_all(target, lines, printer)
        return
    answer = call(target, lambda c: _kept(c, project, lines))
    if as_json:
        kept = {key: answer.get(key) for key in ("node", "seq", "lines", "times")}
        print_json({"name": answer.get("project") or project, **kept})
        return
    printer.print(printer.new(_batch(answer, project)))
    if not answer.get("lines"):
        typer.secho(f"no output from {project} yet", err=True)


def _print_all(target: Any, lines: int, printer: LinePrinter) -> None:
    """`logs --all`: the last `lines` lines of every project together, in time order."""

    async def kept(client: ManagerClient) -> list[Line]:
        names = with_output(await client.status())
        printer.width = max([0, *map(len, names)])
        return await _kept_of_all(client, names, lines, printer)

    found = call(target, kept)
    if printer.as_json:
        print_json([line.as_json() for line in found])
        return
    printer.print(found)
    if not found:
        typer.secho("no output from any project yet", err=True)

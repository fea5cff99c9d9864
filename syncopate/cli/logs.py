"""`syncopate logs PROJECT [--follow]`: a project's output as kept by the manager.

The agents ship each project's new output lines with their reports; the manager keeps the last
1,000 per project and numbers them (`seq`). `--follow` subscribes to those lines on `/events`
first and then prints the kept ones, so no line falls between the two; the numbers drop the
lines that come both ways, and after a lost connection it subscribes again and carries on
from the last line printed.
"""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING, Any

import typer

from syncopate.cli.common import (
    CaFileOption,
    FingerprintOption,
    ManagerOption,
    TokenOption,
    call,
    explain_missing,
    print_json,
)
from syncopate.cli.output import print_json_line
from syncopate.cli.target import find_target
from syncopate.errors import NotFound
from syncopate.feed import FeedDropped, NumberedLines, drop_text

if TYPE_CHECKING:  # the commands import it when they run (syncopate.cli.common.call)
    from syncopate.client import ManagerClient


class Printer(NumberedLines):
    """Prints each numbered line once, in order, and says when lines were lost in between.

    With `json_name` each line is a JSON object of its own (JSON Lines): `name`, `seq`, `line`.
    """

    def __init__(self, json_name: str | None = None) -> None:
        super().__init__()
        self.json_name = json_name

    def show(self, seq: int, lines: list[str]) -> None:
        skipped, new = self.take(seq, lines)
        if skipped:
            typer.secho(f"… {skipped} line(s) no longer kept by the manager", err=True)
        first = (self.next_seq or 0) - len(new)
        for number, line in enumerate(new, start=first):
            if self.json_name is None:
                sys.stdout.write(line + "\n")
            else:
                print_json_line({"name": self.json_name, "seq": number, "line": line})
        sys.stdout.flush()


async def _kept(client: ManagerClient, project: str, lines: int) -> dict[str, Any]:
    try:
        return await client.logs(project, lines)
    except NotFound as exc:
        raise await explain_missing(client, exc, project, "project") from None


async def _follow(client: ManagerClient, project: str, lines: int, printer: Printer) -> None:
    async def show_kept(snapshot: dict[str, Any]) -> None:
        # Subscribed first: from here on new lines come to us, so none falls in between.
        answer = await _kept(client, project, lines)
        printer.show(int(answer.get("seq") or 0), list(answer.get("lines") or ()))

    async with contextlib.aclosing(client.follow_events([project], on_connect=show_kept)) as feed:
        async for message in feed:
            if isinstance(message, FeedDropped):
                if printer.next_seq is None:
                    raise message.error  # never connected: a wrong URL or a stopped manager
                typer.secho(drop_text(message), err=True)
            elif message.get("type") == "logs" and message.get("project") == project:
                printer.show(int(message["seq"]), list(message["lines"]))
            elif (
                message.get("type") == "changes"
                and (message.get("projects") or {}).get(project, 1) is None
            ):
                typer.secho(f"{project} was removed", err=True)
                return


def logs(
    project: str = typer.Argument(..., help="The project whose output to show."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines."),
    lines: int = typer.Option(
        200, "--lines", "-n", min=1, max=1000, metavar="N", help="How many lines."
    ),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="Print JSON for scripts: one object (with --follow: one object per line).",
    ),
    manager: ManagerOption = None,
    token: TokenOption = None,
    ca_file: CaFileOption = None,
    fingerprint: FingerprintOption = None,
) -> None:
    """Show a project's recent output (the manager keeps its last 1,000 lines)."""
    target = find_target(manager, token, ca_file, fingerprint)
    printer = Printer(project if as_json else None)
    if not follow:
        answer = call(target, lambda c: _kept(c, project, lines))
        if as_json:
            kept = {key: answer.get(key) for key in ("node", "seq", "lines")}
            print_json({"name": answer.get("project") or project, **kept})
            return
        printer.show(int(answer.get("seq") or 0), list(answer.get("lines") or ()))
        if not answer.get("lines"):
            typer.secho(f"no output from {project} yet", err=True)
        return
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how following ends
        call(target, lambda c: _follow(c, project, lines, printer))

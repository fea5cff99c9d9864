"""`syncopate logs PROJECT [--follow]`: a project's output as kept by the manager.

The agents ship each project's new output lines with their reports; the manager keeps the last
1,000 per project and numbers them (`seq`). `--follow` subscribes to those lines on `/events`
first and then prints the kept ones, so no line falls between the two; the numbers drop the
lines that come both ways, and after a lost connection it subscribes again and carries on
from the last line printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import Any

import typer

from syncopate.cli.common import call, controller_command, explain_missing
from syncopate.cli.target import Target
from syncopate.client import ManagerClient
from syncopate.errors import ConnectionFailed, NotFound

RECONNECT_DELAYS = (0.5, 1.0, 2.0, 5.0)  # then every 5 s


class NumberedLines:
    """Which of a project's numbered output lines are new: each is taken once, in order.

    The same lines can come twice (the kept ones and the feed overlap); `seq` numbers the
    first line of each batch, as the `logs` answer and /events `logs` messages do.
    """

    def __init__(self) -> None:
        self.next_seq: int | None = None

    def take(self, seq: int, lines: list[str]) -> tuple[int, list[str]]:
        """(how many lines were lost before these, the lines not seen yet)."""
        skipped = 0
        if self.next_seq is not None:
            skipped = max(0, seq - self.next_seq)
            lines = lines[max(0, self.next_seq - seq) :]
            seq = max(seq, self.next_seq)
        self.next_seq = seq + len(lines)
        return skipped, lines


class Printer(NumberedLines):
    """Prints each numbered line once, in order, and says when lines were lost in between."""

    def show(self, seq: int, lines: list[str]) -> None:
        skipped, new = self.take(seq, lines)
        if skipped:
            typer.secho(f"… {skipped} line(s) no longer kept by the manager", err=True)
        for line in new:
            sys.stdout.write(line + "\n")
        sys.stdout.flush()


async def _kept(client: ManagerClient, project: str, lines: int) -> dict[str, Any]:
    try:
        return await client.logs(project, lines)
    except NotFound as exc:
        raise await explain_missing(client, exc, project, "project") from None


async def _follow(client: ManagerClient, project: str, lines: int, printer: Printer) -> None:
    attempt = 0
    while True:
        feed = client.events(logs=[project])
        try:
            await anext(feed)  # the snapshot: from here on, new lines come to us
            answer = await _kept(client, project, lines)
            printer.show(int(answer.get("seq") or 0), list(answer.get("lines") or ()))
            attempt = 0
            async for message in feed:
                kind = message.get("type")
                if kind == "logs" and message.get("project") == project:
                    printer.show(int(message["seq"]), list(message["lines"]))
                elif kind == "changes" and (message.get("projects") or {}).get(project, 1) is None:
                    typer.secho(f"{project} was removed", err=True)
                    return
        except ConnectionFailed as exc:
            if printer.next_seq is None:
                raise  # never connected: a wrong URL or a stopped manager, say so at once
            delay = RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)]
            typer.secho(f"{exc}; trying again in {delay:g} s", err=True)
            attempt += 1
            await asyncio.sleep(delay)
        finally:
            await feed.aclose()


@controller_command
def logs(
    project: str = typer.Argument(..., help="The project whose output to show."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines."),
    lines: int = typer.Option(
        200, "--lines", "-n", min=1, max=1000, metavar="N", help="How many lines."
    ),
    *,
    target: Target,
) -> None:
    """Show a project's recent output (the manager keeps its last 1,000 lines)."""
    printer = Printer()
    if not follow:
        answer = call(target, lambda c: _kept(c, project, lines))
        printer.show(int(answer.get("seq") or 0), list(answer.get("lines") or ()))
        if not answer.get("lines"):
            typer.secho(f"no output from {project} yet", err=True)
        return
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how following ends
        call(target, lambda c: _follow(c, project, lines, printer))

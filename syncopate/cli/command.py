"""`syncopate command send|list|show|analyze|cancel`: the command channel from the command line.

A command is a small program for one node (or lite device); the node runs it beside its
projects and responds, and someone may attach an analysis. `send --wait` subscribes to the
manager's /events feed and prints the responses as they come, then exits with the program's
exit status, so a script can use it like `ssh node program`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from syncopate.cli.common import (
    JSON_OPTION,
    CaFileOption,
    FingerprintOption,
    ManagerOption,
    TokenOption,
    call,
    names_or_all,
    print_json,
    usage_error,
)
from syncopate.cli.helpstyle import aliased
from syncopate.cli.target import find_target
from syncopate.errors import ConfigError

if TYPE_CHECKING:  # the commands import these when they run: --help needs no asyncio client
    from syncopate.client import ManagerClient
    from syncopate.feed import FeedDropped

app = typer.Typer(
    help="Send a program to nodes, and follow what became of it.",
    no_args_is_help=True,
    cls=aliased({"ls": "list"}),
)


def read_code(code: str | None, file: Path | None) -> str:
    """The program from --code or --file (`-` reads standard input); exactly one is needed."""
    if code is None and file is None:
        raise usage_error("give the program with --code C or --file F")
    if code is not None and file is not None:
        raise usage_error("give the program with --code C or --file F, not both")
    if code is not None:
        return code
    assert file is not None
    if str(file) == "-":
        return sys.stdin.read()
    try:
        return file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read --file {file}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"--file {file} is not UTF-8 text") from None


def print_responses(commands: Sequence[Mapping[str, Any]]) -> int:
    """Print each command's response (labelled when there are several); the exit status."""
    from syncopate.command_results import describe_end, exit_status

    labelled = len(commands) > 1
    status = 0
    for info in sorted(commands, key=lambda c: str(c.get("node"))):
        code = exit_status(info)
        if status == 0:
            status = code
        if info.get("state") in ("timed-out", "canceled"):
            typer.secho(f"error: {describe_end(info)}", err=True)
            continue
        if labelled:
            typer.secho(f"── {info.get('node')} · exit {code} ──", bold=True)
        response = str(info.get("response") or "")
        sys.stdout.write(response if not response or response.endswith("\n") else response + "\n")
        sys.stdout.flush()
    return status


def say_dropped(drop: FeedDropped) -> None:
    from syncopate.feed import drop_text  # with the feed, which only a running command has

    typer.secho(drop_text(drop), err=True)


@app.command()
def send(
    nodes: list[str] = typer.Argument(None, help="The nodes (or lite devices) to run it on."),
    all_nodes: bool = typer.Option(False, "--all", help="Every live node that runs the agent."),
    code: str = typer.Option(None, "--code", metavar="C", help="The program's text."),
    file: Path = typer.Option(
        None, "--file", metavar="F", help="Read the program from a file (- for stdin)."
    ),
    sh: bool = typer.Option(False, "--sh", help="Run it with sh -c instead of python3 -."),
    timeout: float = typer.Option(
        30.0, min=0.001, metavar="S", help="Seconds it may run; then it is ended (TIMEOUT)."
    ),
    pickup: float = typer.Option(
        60.0, min=0.001, metavar="S", help="Seconds its node has to collect it (offline nodes)."
    ),
    wait: bool = typer.Option(
        False, "--wait", help="Print the response and exit with the program's exit status."
    ),
    as_json: bool = JSON_OPTION,
    manager: ManagerOption = None,
    token: TokenOption = None,
    ca_file: CaFileOption = None,
    fingerprint: FingerprintOption = None,
) -> None:
    """Send a program to nodes; print the new command ids (one per node)."""
    from syncopate.command_results import exit_status, wait_answered

    names_or_all(nodes, all_nodes, "name the nodes to run it on")
    program = read_code(code, file)  # usage errors before looking for a manager
    target = find_target(manager, token, ca_file, fingerprint)

    async def run(client: ManagerClient) -> list[dict[str, Any]]:
        # An unknown node is refused with the manager's own "did you mean".
        sent = await client.command_send(
            nodes or [],
            program,
            all_nodes=all_nodes,
            interpreter="sh" if sh else "python",
            timeout=timeout,
            pickup=pickup,
        )
        if not wait:
            return list(sent.values())
        return await wait_answered(client, [int(key) for key in sent], say_dropped)

    try:
        commands = call(target, run)
    except KeyboardInterrupt:
        typer.secho("stopped waiting; `syncopate command list` shows the commands", err=True)
        raise typer.Exit(130) from None
    if as_json:
        print_json(commands)
        if wait:
            raise typer.Exit(max((exit_status(c) for c in commands), default=0))
        return
    if not wait:
        for info in commands:
            typer.echo(info["id"])
        return
    raise typer.Exit(print_responses(commands))


@app.command("list")
def list_commands(
    node: str = typer.Option(None, "--node", metavar="N", help="Only those sent to this node."),
    state: str = typer.Option(
        None,
        "--state",
        metavar="S",
        help="Only those in this state: requested, collected, responded, analyzed, "
        "timed-out, canceled.",
    ),
    user: str = typer.Option(None, "--user", metavar="U", help="Only those sent by this user."),
    limit: int = typer.Option(
        50, "--limit", "-n", min=1, max=1000, metavar="N", help="How many, newest first."
    ),
    before: int = typer.Option(
        None, "--before", metavar="ID", min=1, help="Older than this id (the next page)."
    ),
    as_json: bool = JSON_OPTION,
    manager: ManagerOption = None,
    token: TokenOption = None,
    ca_file: CaFileOption = None,
    fingerprint: FingerprintOption = None,
) -> None:
    """The command log, newest first (also: ls)."""
    target = find_target(manager, token, ca_file, fingerprint)
    answer = call(target, lambda c: c.command_list(node, state, user, limit, before))
    commands: dict[str, dict[str, Any]] = answer.get("commands") or {}
    if as_json:
        print_json(list(commands.values()))
        if answer.get("more"):  # standard output stays one JSON array; the hint goes aside
            typer.secho(f"(older ones: --before {answer.get('next-before')})", err=True)
        return
    if not commands:
        typer.echo("no commands" + (" match" if node or state or user or before else " yet"))
        return
    from rich.console import Console

    from syncopate.command_render import commands_table

    Console().print(commands_table(commands))
    if answer.get("more"):
        typer.echo(f"(older ones: --before {answer.get('next-before')})")


@app.command()
def show(
    command_id: int = typer.Argument(..., metavar="ID", help="The command's id."),
    as_json: bool = JSON_OPTION,
    manager: ManagerOption = None,
    token: TokenOption = None,
    ca_file: CaFileOption = None,
    fingerprint: FingerprintOption = None,
) -> None:
    """One command in full: every step with who and when, its code, response and analysis."""
    target = find_target(manager, token, ca_file, fingerprint)
    info = call(target, lambda c: c.command_show(command_id))
    if as_json:
        print_json(info)
        return
    from rich.console import Console

    from syncopate.command_render import command_detail

    Console().print(command_detail(info))


@app.command()
def analyze(
    command_id: int = typer.Argument(..., metavar="ID", help="The command's id."),
    text: str = typer.Argument(..., help="The analysis of its response."),
    as_json: bool = JSON_OPTION,
    manager: ManagerOption = None,
    token: TokenOption = None,
    ca_file: CaFileOption = None,
    fingerprint: FingerprintOption = None,
) -> None:
    """Attach an analysis to a responded command (once)."""
    target = find_target(manager, token, ca_file, fingerprint)
    info = call(target, lambda c: c.command_analyze(command_id, text))
    _done(info, f"command {info['id']} analyzed", as_json)


@app.command()
def cancel(
    command_id: int = typer.Argument(..., metavar="ID", help="The command's id."),
    as_json: bool = JSON_OPTION,
    manager: ManagerOption = None,
    token: TokenOption = None,
    ca_file: CaFileOption = None,
    fingerprint: FingerprintOption = None,
) -> None:
    """Take back a command its node has not collected yet."""
    target = find_target(manager, token, ca_file, fingerprint)
    info = call(target, lambda c: c.command_cancel(command_id))
    _done(info, f"command {info['id']} canceled", as_json)


def _done(info: Mapping[str, Any], result: str, as_json: bool) -> None:
    """An action on one command: the command with `result` under --json, else `result`."""
    if as_json:
        print_json({**info, "result": result})
    else:
        typer.echo(result)

"""`syncopate project rollout NAME [--retry]`: which commit runs, the last good one, the bad one.

Registered on the `project` group by cli/project.py (DESIGN section 12).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import typer

from syncopate.cli.common import (
    JSON_OPTION,
    CaFileOption,
    FingerprintOption,
    ManagerOption,
    TokenOption,
    call,
    explain_missing,
    print_json,
)
from syncopate.cli.target import find_target
from syncopate.errors import NotFound

if TYPE_CHECKING:  # the commands import it when they run (syncopate.cli.common.call)
    from syncopate.client import ManagerClient

SHORT = 7


def rollout(
    name: str = typer.Argument(..., help="The project."),
    retry: bool = typer.Option(
        False, "--retry", help="Let its node try the bad commit it rolled back from again."
    ),
    as_json: bool = JSON_OPTION,
    manager: ManagerOption = None,
    token: TokenOption = None,
    ca_file: CaFileOption = None,
    fingerprint: FingerprintOption = None,
) -> None:
    """Show the commit it runs, its last good and its bad commit; --retry tries the bad again."""
    target = find_target(manager, token, ca_file, fingerprint)

    async def run(client: ManagerClient) -> dict[str, Any]:
        try:
            return await client.rollout(name, retry=retry)
        except NotFound as exc:
            raise await explain_missing(client, exc, name, "project") from None

    answer = call(target, run)
    info = answer["projects"][name]
    retrying = answer.get("request-information") or f"{name}: retrying its bad commit"
    if as_json:
        print_json({"name": name, **_fields(info), **({"result": retrying} if retry else {})})
        return
    if retry:
        typer.echo(retrying)
        return
    typer.echo("\n".join(rollout_lines(name, info)))


def _fields(info: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("status", "node", "commit", "good-commit", "bad-commit", "bad-reason", "grace")
    return {key: info.get(key) for key in (*keys, "rollout-retry")}


def rollout_lines(name: str, info: Mapping[str, Any]) -> list[str]:
    """The rollout of project `name` (its `status` answer), for a person."""
    commit, good, bad = info.get("commit"), info.get("good-commit"), info.get("bad-commit")
    lines = [f"{name}: {info.get('status')}" + (f" on {info['node']}" if info.get("node") else "")]
    running = _short(commit)
    if commit and commit == good:
        running += " (the last good commit)"
    elif commit:
        grace = info.get("grace")
        running += f" (has not run well for its grace of {grace:g}s yet)" if grace else ""
    lines.append(f"  commit      {running}")
    lines.append(f"  last good   {_short(good)}")
    if bad:
        lines.append(f"  bad commit  {_short(bad)}: {info.get('bad-reason') or 'no reason given'}")
        lines.append(
            f"  not run again until a newer commit or `syncopate project rollout {name} --retry`"
        )
    else:
        lines.append("  bad commit  none")
    return lines


def _short(commit: Any) -> str:
    return str(commit)[:SHORT] if commit else "-"

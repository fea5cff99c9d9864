"""`syncopate project add|set|vars|remove|start|stop|restart|reset|list|show` (and `rollout`,
from cli/rollout.py)."""

from __future__ import annotations

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
    explain_first_missing,
    explain_missing,
    names_or_all,
    print_json,
    print_listing,
    usage_error,
)
from syncopate.cli.helpstyle import aliased
from syncopate.cli.output import named, named_list
from syncopate.cli.project_help import (
    ENV_HELP,
    GIT_URL_HELP,
    GRACE_HELP,
    HEALTH_CMD_HELP,
    HEALTH_HTTP_HELP,
    MAX_RAM_HELP,
    ON_HELP,
    SECRET_HELP,
    megabytes,
)
from syncopate.cli.project_values import env_pairs, initial_variables
from syncopate.cli.rollout import rollout
from syncopate.cli.target import find_target
from syncopate.errors import NotFound

if TYPE_CHECKING:  # the commands import it when they run (syncopate.cli.common.call)
    from syncopate.client import ManagerClient

ALIASES = aliased({"ls": "list", "rm": "remove"})
app = typer.Typer(help="Add, control and inspect projects.", no_args_is_help=True, cls=ALIASES)


async def _named(client: ManagerClient, name: str) -> dict[str, Any]:
    try:
        return (await client.status([name]))[name]
    except NotFound as exc:
        raise await explain_missing(client, exc, name, "project") from None


@app.command()
def add(
    name: str = typer.Argument(..., help="Project name: letters, digits, '.', '_', '-'."),
    url: str = typer.Argument(..., help=GIT_URL_HELP),
    command: str = typer.Option(
        None,
        metavar="C",
        help="Run command (default: syncopate.toml's \\[run] command, else ./run.sh).",
    ),
    ref: str = typer.Option(
        None, metavar="R", help="Branch, tag or commit (default: the default branch)."
    ),
    var: list[str] = typer.Option(
        [],
        metavar="KEY=VALUE",
        help="Initial variable KEY=VALUE; VALUE as JSON when it parses (repeatable).",
    ),
    vars_file: Path = typer.Option(
        None, metavar="F", help="Initial variables from a JSON object file."
    ),
    ram: float = megabytes("RAM the project needs, MB", "none; what it uses counts"),
    disk: float = megabytes("Disk the project needs, MB", "none; what it uses counts"),
    exclusive: bool = typer.Option(
        False, "--exclusive", help="Never run two copies, even when its node is cut off."
    ),
    no_start: bool = typer.Option(False, "--no-start", help="Add it stopped."),
    env: list[str] = typer.Option([], metavar="K=V", help=ENV_HELP),
    secret: list[str] = typer.Option([], metavar="K=V", help=SECRET_HELP),
    on: list[str] = typer.Option([], metavar="K=V", help=ON_HELP),
    every_node: bool = typer.Option(
        False, "--every-node", help="Run one copy on every live node that meets --on."
    ),
    stay: bool = typer.Option(False, "--stay", help="Never move it to balance the load."),
    health_cmd: str = typer.Option(None, metavar="CMD", help=HEALTH_CMD_HELP),
    health_http: str = typer.Option(None, metavar="URL", help=HEALTH_HTTP_HELP),
    health_interval: float = typer.Option(
        10.0, min=0.1, metavar="S", help="Seconds between health checks."
    ),
    health_timeout: float = typer.Option(
        5.0, min=0.1, metavar="S", help="Seconds one health check may take."
    ),
    health_retries: int = typer.Option(
        3, min=1, metavar="N", help="Failed checks in a row before it is unhealthy."
    ),
    grace: float = typer.Option(60.0, min=0, metavar="S", help=GRACE_HELP),
    max_ram: float = megabytes(MAX_RAM_HELP, "no limit"),
    as_json: bool = JSON_OPTION,
    manager: ManagerOption = None,
    token: TokenOption = None,
    ca_file: CaFileOption = None,
    fingerprint: FingerprintOption = None,
) -> None:
    """Add a project; the manager places it on the node that fits it best."""
    target = find_target(manager, token, ca_file, fingerprint)
    variables = initial_variables(var, vars_file)
    environment = env_pairs(env)
    answer = call(
        target,
        lambda c: c.add(
            name,
            url,
            variables,
            command=command,
            ref=ref,
            ram=ram,
            disk=disk,
            exclusive=exclusive,
            start=not no_start,
            env=environment or None,
            secrets=env_pairs(secret) or None,
            on=on or None,
            every_node=every_node or None,
            stay=stay or None,
            health_cmd=health_cmd,
            health_http=health_http,
            health_interval=health_interval,
            health_timeout=health_timeout,
            health_retries=health_retries,
            grace=grace,
            max_ram=max_ram or None,
        ),
    )
    result = answer.get("request-information") or f"added {name}"
    if as_json:
        print_json(named(name, answer["projects"][name], result=result))
        return
    typer.echo(result)


@app.command("set")
def set_project(
    name: str = typer.Argument(..., help="The project to change."),
    command: str = typer.Option(
        None, metavar="C", help="Run command ('' for the repository's own)."
    ),
    ref: str = typer.Option(None, metavar="R", help="Branch, tag or commit ('' for the default)."),
    url: str = typer.Option(None, metavar="U", help=GIT_URL_HELP),
    ram: float = typer.Option(None, min=0, metavar="MB", help="RAM the project needs, MB."),
    disk: float = typer.Option(None, min=0, metavar="MB", help="Disk the project needs, MB."),
    exclusive: bool = typer.Option(
        None, "--exclusive/--no-exclusive", help="Never run two copies (or allow it again)."
    ),
    env: list[str] = typer.Option([], metavar="K=V", help=ENV_HELP),
    unset_env: list[str] = typer.Option(
        [], metavar="K", help="Remove an environment variable (repeatable)."
    ),
    secret: list[str] = typer.Option([], metavar="K=V", help=SECRET_HELP),
    unset_secret: list[str] = typer.Option([], metavar="K", help="Remove a secret (repeatable)."),
    on: list[str] = typer.Option([], metavar="K=V", help=ON_HELP),
    no_on: bool = typer.Option(False, "--no-on", help="Remove every --on constraint."),
    stay: bool = typer.Option(
        None, "--stay/--no-stay", help="Never move it for balance (or allow it again)."
    ),
    health_cmd: str = typer.Option(None, metavar="CMD", help=HEALTH_CMD_HELP + " ('' for none)"),
    health_http: str = typer.Option(None, metavar="URL", help=HEALTH_HTTP_HELP + " ('' for none)"),
    health_interval: float = typer.Option(
        None, min=0.1, metavar="S", help="Seconds between health checks."
    ),
    health_timeout: float = typer.Option(
        None, min=0.1, metavar="S", help="Seconds one health check may take."
    ),
    health_retries: int = typer.Option(
        None, min=1, metavar="N", help="Failed checks in a row before it is unhealthy."
    ),
    grace: float = typer.Option(None, min=0, metavar="S", help=GRACE_HELP),
    max_ram: float = typer.Option(None, min=0, metavar="MB", help=MAX_RAM_HELP + " (0: none)"),
    as_json: bool = JSON_OPTION,
    manager: ManagerOption = None,
    token: TokenOption = None,
    ca_file: CaFileOption = None,
    fingerprint: FingerprintOption = None,
) -> None:
    """Change a project in place; its variables, output and history stay.

    It restarts once, on its node, if its process must see the change (url,
    ref, command, env, secrets); ram and disk move it only if it no longer fits.
    """
    target = find_target(manager, token, ca_file, fingerprint)
    changes: dict[str, Any] = {
        "url": url,
        "command": command,
        "ref": ref,
        "ram": ram,
        "disk": disk,
        "exclusive": exclusive,
        "env": env_pairs(env) or None,
        "unset-env": unset_env or None,
        "secrets": env_pairs(secret) or None,
        "unset-secrets": unset_secret or None,
        "on": [] if no_on else (on or None),
        "stay": stay,
        "health-cmd": health_cmd,
        "health-http": health_http,
        "health-interval": health_interval,
        "health-timeout": health_timeout,
        "health-retries": health_retries,
        "grace": grace,
        "max-ram": max_ram,
    }
    if no_on and on:
        raise usage_error("give --on or --no-on, not both")

    async def run(client: ManagerClient) -> dict[str, Any]:
        try:
            return await client.set_project(name, **changes)
        except NotFound as exc:
            raise await explain_missing(client, exc, name, "project") from None

    answer = call(target, run)
    result = answer.get("request-information") or f"changed {name}"
    if as_json:
        print_json(named(name, answer["projects"][name], changed=answer["changed"], result=result))
        return
    typer.echo(result)


@app.command("vars")
def set_variables(
    items: list[str] = typer.Argument(
        ..., metavar="NAME|KEY=VALUE", help="Projects (none with --all), then variables to write."
    ),
    every: bool = typer.Option(False, "--all", help="Write them into every project."),
    as_json: bool = JSON_OPTION,
    manager: ManagerOption = None,
    token: TokenOption = None,
    ca_file: CaFileOption = None,
    fingerprint: FingerprintOption = None,
) -> None:
    """Write persistent variables into projects; each starts again with them."""
    from syncopate.variables import parse_var

    names = [item for item in items if "=" not in item]
    values = dict(parse_var(item) for item in items if "=" in item)
    if not values:
        raise usage_error("give the variables to write as KEY=VALUE")
    names_or_all(names, every, "name the projects")
    target = find_target(manager, token, ca_file, fingerprint)

    async def run(client: ManagerClient) -> dict[str, Any]:
        try:
            return await client.set_variables(names, values, every=every)
        except NotFound as exc:
            raise await explain_first_missing(client, exc, names, "project") from None

    answer = call(target, run)
    result = answer.get("request-information") or "variables written"
    if as_json:
        print_json(named_list(answer.get("projects") or {}, result=result))
        return
    typer.echo(result)


@app.command()
def remove(
    name: str = typer.Argument(..., help="The project to remove."),
    as_json: bool = JSON_OPTION,
    manager: ManagerOption = None,
    token: TokenOption = None,
    ca_file: CaFileOption = None,
    fingerprint: FingerprintOption = None,
) -> None:
    """Stop a project and remove it with its checkouts and variables (also: rm)."""
    target = find_target(manager, token, ca_file, fingerprint)

    async def run(client: ManagerClient) -> dict[str, Any]:
        info = await _named(client, name)
        return await client.remove(name, str(info["project-url"]))

    answer = call(target, run)
    result = answer.get("request-information") or f"removed {name}"
    if as_json:
        print_json({"name": name, "result": result})
        return
    typer.echo(result)


def _control(verb: str) -> Any:
    def command(
        names: list[str] = typer.Argument(None, help="Projects (or --all)."),
        every: bool = typer.Option(False, "--all", help="Every project."),
        as_json: bool = JSON_OPTION,
        manager: ManagerOption = None,
        token: TokenOption = None,
        ca_file: CaFileOption = None,
        fingerprint: FingerprintOption = None,
    ) -> None:
        names_or_all(names, every, f"name the projects to {verb}")
        target = find_target(manager, token, ca_file, fingerprint)

        async def run(client: ManagerClient) -> dict[str, Any]:
            try:
                answer: dict[str, Any] = await client.controller(verb, projects=names or [])
            except NotFound as exc:
                raise await explain_first_missing(client, exc, names or [], "project") from None
            return answer

        answer = call(target, run)
        result = answer.get("request-information") or verb
        if as_json:
            print_json(named_list(answer.get("projects") or {}, result=result))
            return
        typer.echo(result)

    command.__doc__ = {
        "start": "Start projects (--all: every one).",
        "stop": "Stop projects (--all: every one); their variables are kept.",
        "restart": "Restart projects (--all: every one).",
        "reset": "Start projects again from their initial variables (--all: every one).",
    }[verb]
    return command


for _verb in ("start", "stop", "restart", "reset"):
    app.command(_verb)(_control(_verb))
app.command("rollout")(rollout)


@app.command("list")
def list_projects(
    as_json: bool = JSON_OPTION,
    manager: ManagerOption = None,
    token: TokenOption = None,
    ca_file: CaFileOption = None,
    fingerprint: FingerprintOption = None,
) -> None:
    """Every project: status, node, uptime, RAM, disk, restarts (also: ls)."""
    target = find_target(manager, token, ca_file, fingerprint)
    from syncopate.render import projects_table

    projects = call(target, lambda c: c.status())
    empty = "no projects yet; add one with `syncopate project add NAME GIT-URL`"
    print_listing(projects, as_json, empty, projects_table, "project")


@app.command()
def show(
    name: str = typer.Argument(..., help="The project to show."),
    as_json: bool = JSON_OPTION,
    manager: ManagerOption = None,
    token: TokenOption = None,
    ca_file: CaFileOption = None,
    fingerprint: FingerprintOption = None,
) -> None:
    """One project in full: where it runs, its variables, its last output."""
    target = find_target(manager, token, ca_file, fingerprint)
    info = call(target, lambda c: _named(c, name))
    if as_json:
        print_json(named(name, info))
        return
    from rich.console import Console

    from syncopate.render import project_detail

    Console().print(project_detail(info))

"""`syncopate node join|list|label|drain|undrain|forget|install-service`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from syncopate.agent_options import OPTIONS, URL_HELP, command_line, parse_labels
from syncopate.cli.common import (
    JSON_OPTION,
    CaFileOption,
    FingerprintOption,
    ManagerOption,
    TokenOption,
    call,
    explain_missing,
    print_json,
    print_listing,
    usage_error,
)
from syncopate.cli.helpstyle import aliased
from syncopate.cli.target import Target, find_target
from syncopate.errors import ConfigError, NotFound

if TYPE_CHECKING:  # the commands import it when they run (syncopate.cli.common.call)
    from syncopate.client import ManagerClient

app = typer.Typer(
    help="Run a node agent, or manage nodes.", no_args_is_help=True, cls=aliased({"ls": "list"})
)


def _agent_option(dest: str) -> Any:
    """The Typer option for the agent's option `dest`, as `agent_options.py` defines it."""
    option = OPTIONS[dest]
    extra: dict[str, Any] = {}
    if option.min is not None:
        extra["min"] = option.min
    if option.show_default is not None:
        extra["show_default"] = option.show_default
    return typer.Option(option.default, metavar=option.metavar, help=option.help, **extra)


# Options `join` and `install-service` share: the agent's command line.
URL_ARGUMENT: Any = typer.Argument(..., help=URL_HELP)
NAME_OPTION: Any = _agent_option("name")
DATA_DIR_OPTION: Any = _agent_option("data_dir")
INTERVAL_OPTION: Any = _agent_option("interval")
SYNC_INTERVAL_OPTION: Any = _agent_option("sync_interval")
CA_FILE_OPTION: Any = _agent_option("ca_file")
FINGERPRINT_OPTION: Any = _agent_option("fingerprint")
LABEL_OPTION: Any = _agent_option("label")
JOIN_TOKEN_OPTION: Any = typer.Option(
    None,
    "--token",
    envvar="SYNCOPATE_JOIN_TOKEN",
    metavar="SYN1-...",
    help="The join string `manager serve` and `manager join-command` print: the manager's "
    "pin and the join password in one.",
)


INSECURE_OPTION: Any = typer.Option(
    False,
    "--insecure",
    help="Talk plain HTTP to a manager beyond loopback (one started with --insecure).",
)


def join_credentials(
    url: str,
    token: str | None,
    password: str | None,
    fingerprint: str | None,
    insecure: bool = False,
) -> tuple[str | None, str | None]:
    """(password, fingerprint) from a join string or from --password/--fingerprint; a usage
    error for a malformed join string, one that contradicts them, or a plain http:// URL (its
    pin could not be checked and its secret would cross the network in clear)."""
    if not token:
        check_plain_http(url, insecure)
        return password, fingerprint
    from syncopate.pins import parse_join_token, parse_pin

    try:
        parsed = parse_join_token(token)
    except ValueError as exc:
        raise usage_error(f"--token: {exc}") from None
    if not url.startswith("https://"):
        raise usage_error(f"--token carries the manager's pin: {url} must be an https:// URL")
    if password and password != parsed.secret:
        raise usage_error("--token carries the join password: give --token or --password")
    if fingerprint:
        try:
            differs = parse_pin(fingerprint) != parse_pin(parsed.pin)
        except ValueError as exc:
            raise usage_error(f"--fingerprint: {exc}") from None
        if differs:
            raise usage_error("--token carries the pin: give --token or --fingerprint")
    return parsed.secret, parsed.pin


def check_plain_http(url: str, insecure: bool) -> None:
    """A usage error for http:// beyond loopback without --insecure: the join password and
    the node's token would cross the network in clear, to a manager no pin can check (a
    manager there serves HTTPS unless it was started with --insecure)."""
    from urllib.parse import urlsplit

    from syncopate.hosts import is_loopback

    for one in url.split(","):  # several managers sharing a database: each
        one = one.strip()
        if not one.startswith("http://") or insecure or is_loopback(urlsplit(one).hostname or ""):
            continue
        raise usage_error(
            f"refusing to send the join password and the node's token in clear to {one}: a "
            "manager beyond loopback serves HTTPS (use the line `syncopate manager "
            "join-command` prints); for a manager started with --insecure, add --insecure"
        )


@app.command()
def join(
    url: str = URL_ARGUMENT,
    password: str = typer.Option(
        None,
        envvar="SYNCOPATE_PASSWORD",
        metavar="P",
        help="The manager's join password (first join).",
    ),
    token: str = JOIN_TOKEN_OPTION,
    insecure: bool = INSECURE_OPTION,
    name: str = NAME_OPTION,
    data_dir: Path = DATA_DIR_OPTION,
    interval: float = INTERVAL_OPTION,
    sync_interval: float = SYNC_INTERVAL_OPTION,
    ca_file: str = CA_FILE_OPTION,
    fingerprint: str = FINGERPRINT_OPTION,
    label: list[str] = LABEL_OPTION,
    log_level: str = _agent_option("log_level"),
) -> None:
    """Join the manager and run its projects here until Ctrl-C or SIGTERM."""
    import os
    import sys

    secret, pin = join_credentials(url, token, password, fingerprint, insecure)
    check_labels(label)
    argv = agent_argv(
        url,
        name=name,
        data_dir=data_dir,
        interval=interval,
        sync_interval=sync_interval,
        ca_file=ca_file,
        fingerprint=pin,
        label=label,
        log_level=log_level,
    )
    env = dict(os.environ)
    env.pop("SYNCOPATE_JOIN_TOKEN", None)  # the agent is given its parts, not the string
    if secret:
        env["SYNCOPATE_PASSWORD"] = secret
    sys.stdout.flush()
    sys.stderr.flush()
    # Replace this process (same pid, for systemd and for whoever started us) with the light
    # entry point, so the agent that runs for months does not carry the CLI's imports.
    os.execve(sys.executable, argv, env)


def check_labels(labels: list[str]) -> dict[str, str]:
    """`K=V` items as labels; ConfigError says which is not one, or not a valid one."""
    from syncopate.constraints import check_labels as check_valid

    try:
        return check_valid(parse_labels(labels))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def agent_argv(url: str, **values: Any) -> list[str]:
    """The agent's command line: this interpreter running the light `syncopate.node` entry,
    with the agent's options `values` (by name, see `syncopate/agent_options.py`)."""
    import sys

    return [sys.executable, "-m", "syncopate.node", *command_line(url, values)]


def _node_action(
    target: Target, action: str, name: str, done: str, as_json: bool
) -> dict[str, Any]:
    """Ask the manager for `action` on node `name` and say what it did (else `done`).

    Under --json it says nothing: the caller prints the whole object.
    """

    async def run(client: ManagerClient) -> dict[str, Any]:
        try:
            return await client.controller(action, node=name)
        except NotFound as exc:
            raise await explain_missing(client, exc, name, "node") from None

    answer = call(target, run)
    answer["result"] = answer.get("request-information") or done
    if not as_json:
        typer.echo(answer["result"])
    return answer


@app.command("list")
def list_nodes(
    as_json: bool = JSON_OPTION,
    manager: ManagerOption = None,
    token: TokenOption = None,
    ca_file: CaFileOption = None,
    fingerprint: FingerprintOption = None,
) -> None:
    """Every node: status, projects, RAM and disk, last contact (also: ls)."""
    target = find_target(manager, token, ca_file, fingerprint)
    from syncopate.render import nodes_table

    nodes = call(target, lambda c: c.nodes())
    empty = (
        "no nodes yet; `syncopate manager join-command` (where the manager runs) prints the line "
        "to run on each machine"
    )
    print_listing(nodes, as_json, empty, nodes_table, "node")


@app.command()
def label(
    name: str = typer.Argument(..., help="The node."),
    labels: list[str] = typer.Argument(
        None, metavar="K=V", help="Labels to set (a key it has already: its new value)."
    ),
    remove: list[str] = typer.Option(
        [], "--remove", metavar="K", help="Remove label K (repeatable)."
    ),
    as_json: bool = JSON_OPTION,
    manager: ManagerOption = None,
    token: TokenOption = None,
    ca_file: CaFileOption = None,
    fingerprint: FingerprintOption = None,
) -> None:
    """Set or remove a node's labels: projects placed with `--on` follow them."""
    given = check_labels(labels or [])
    if not given and not remove:
        raise usage_error("give labels to set (K=V) or --remove K, or both")
    target = find_target(manager, token, ca_file, fingerprint)

    async def run(client: ManagerClient) -> dict[str, Any]:
        try:
            return await client.label(name, given, remove)
        except NotFound as exc:
            raise await explain_missing(client, exc, name, "node") from None

    answer = call(target, run)
    result = answer.get("request-information") or f"labelled {name}"
    if as_json:
        print_json({"name": name, "result": result, "labels": answer.get("labels") or {}})
        return
    typer.echo(result)


@app.command()
def drain(
    name: str = typer.Argument(..., help="The node to empty."),
    as_json: bool = JSON_OPTION,
    manager: ManagerOption = None,
    token: TokenOption = None,
    ca_file: CaFileOption = None,
    fingerprint: FingerprintOption = None,
) -> None:
    """Move a node's projects elsewhere and place nothing new on it (before maintenance)."""
    target = find_target(manager, token, ca_file, fingerprint)
    answer = _node_action(target, "node-drain", name, f"draining {name}", as_json)
    moving = sorted(answer.get("projects") or ())
    if as_json:
        print_json({"name": name, "result": answer["result"], "moving": moving})
    elif moving:
        typer.echo(f"moving: {', '.join(moving)}")


@app.command()
def undrain(
    name: str = typer.Argument(..., help="The drained node."),
    as_json: bool = JSON_OPTION,
    manager: ManagerOption = None,
    token: TokenOption = None,
    ca_file: CaFileOption = None,
    fingerprint: FingerprintOption = None,
) -> None:
    """Let a drained node take projects again."""
    target = find_target(manager, token, ca_file, fingerprint)
    answer = _node_action(target, "node-undrain", name, f"{name} accepts projects again", as_json)
    if as_json:
        print_json({"name": name, "result": answer["result"]})


@app.command()
def forget(
    name: str = typer.Argument(..., help="A dead node."),
    as_json: bool = JSON_OPTION,
    manager: ManagerOption = None,
    token: TokenOption = None,
    ca_file: CaFileOption = None,
    fingerprint: FingerprintOption = None,
) -> None:
    """Remove a dead node from the manager's list for good."""
    target = find_target(manager, token, ca_file, fingerprint)
    answer = _node_action(target, "node-forget", name, f"forgot {name}", as_json)
    if as_json:
        print_json({"name": name, "result": answer["result"]})


@app.command("install-service")
def install_service(
    url: str = URL_ARGUMENT,
    password: str = typer.Option(
        None, envvar="SYNCOPATE_PASSWORD", metavar="P", help="The manager's join password."
    ),
    token: str = JOIN_TOKEN_OPTION,
    insecure: bool = INSECURE_OPTION,
    name: str = NAME_OPTION,
    user: bool = typer.Option(
        False, "--user", help="A user unit (systemctl --user) instead of a system unit."
    ),
    data_dir: Path = DATA_DIR_OPTION,
    interval: float = INTERVAL_OPTION,
    sync_interval: float = SYNC_INTERVAL_OPTION,
    ca_file: str = CA_FILE_OPTION,
    fingerprint: str = FINGERPRINT_OPTION,
    label: list[str] = LABEL_OPTION,
    unit_dir: Path = typer.Option(
        None,
        metavar="DIR",
        help="Write the unit here instead.",
        show_default="/etc/systemd/system, or ~/.config/systemd/user with --user",
    ),
    print_only: bool = typer.Option(
        False, "--print", "--dry-run", help="Print the unit instead of writing anything."
    ),
) -> None:
    """Write a systemd unit that runs this machine's agent at boot, and say how to enable it."""
    from syncopate.cli import service

    secret, pin = join_credentials(url, token, password, fingerprint, insecure)
    if not secret:
        raise usage_error("give --token SYN1-... (or --password) to join with")
    check_labels(label)
    plan = service.plan("node", user=user, data_dir=data_dir, unit_dir=unit_dir)
    argv = agent_argv(
        url,
        name=name,
        data_dir=plan.data_dir,
        interval=interval,
        sync_interval=sync_interval,
        ca_file=ca_file,
        fingerprint=pin,
        label=label,
    )
    unit = service.unit_text(argv, plan, f"Syncopate node agent (manager {url})")
    if print_only:
        typer.echo(unit, nl=False)
        return
    service.install(plan, unit, secret)
    typer.echo(f"wrote {plan.unit_path}")
    typer.echo(f"wrote {plan.env_path} (the join password, mode 0600)")
    if pin:
        typer.echo(f"the agent pins the manager's certificate: {pin}")
    typer.echo(service.next_steps(plan))

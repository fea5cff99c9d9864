"""`syncopate manager serve|token|tokens|revoke|join-command|rotate-join|install-service`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from syncopate.cli.common import (
    JSON_OPTION,
    CaFileOption,
    FingerprintOption,
    ManagerOption,
    TokenOption,
)
from syncopate.errors import ConfigError
from syncopate.paths import default_manager_dir
from syncopate.roles import ROLE_NAMES

app = typer.Typer(
    help="Run the manager, manage its controller tokens, or install it as a service.",
    no_args_is_help=True,
)

STORE_FILE = "store.json"  # sql_store.STORE_FILE (not imported: the CLI starts fast)
DATA_DIR_HELP = "Where the manager keeps its database and secrets."

# Options `serve` and `install-service` share: the manager's command line.
HOST_OPTION: Any = typer.Option(
    "127.0.0.1", metavar="HOST", help="Address to listen on (0.0.0.0 for all)."
)
PORT_OPTION: Any = typer.Option(
    8470, metavar="PORT", help="Port to listen on (0 picks a free one)."
)
DATA_DIR_OPTION: Any = typer.Option(
    None, metavar="D", help=DATA_DIR_HELP, show_default="~/.local/share/syncopate/manager"
)
NODE_TIMEOUT_OPTION: Any = typer.Option(
    15.0, min=0.1, metavar="S", help="Seconds of silence after which a node is dead."
)
NO_BALANCE_OPTION: Any = typer.Option(
    False,
    "--no-balance",
    help="Never move projects only to even the load (failover and drain still move them).",
)
TLS_CERT_OPTION: Any = typer.Option(
    None, metavar="F", help="PEM certificate to serve HTTPS with (else the manager makes one)."
)
TLS_KEY_OPTION: Any = typer.Option(None, metavar="F", help="PEM private key for --tls-cert.")
TLS_OPTION: Any = typer.Option(
    False, "--tls", help="HTTPS with the manager's own certificate even on loopback."
)
INSECURE_OPTION: Any = typer.Option(
    False,
    "--insecure",
    help="Plain HTTP beyond loopback: passwords and tokens cross the network in clear.",
)
STORE_OPTION: Any = typer.Option(
    None,
    envvar="SYNCOPATE_STORE",
    metavar="URL",
    help="postgresql://USER@HOST/DB: keep the state there, where several managers may share "
    "it (else SQLite in the data dir). Kept in the data dir's store.json for the commands "
    "run beside the manager.",
)
LOG_LEVEL_OPTION: Any = typer.Option("info", metavar="LEVEL", help="debug, info, warning or error.")


@app.command()
def serve(
    host: str = HOST_OPTION,
    port: int = PORT_OPTION,
    data_dir: Path = DATA_DIR_OPTION,
    password: str = typer.Option(
        None,
        envvar="SYNCOPATE_PASSWORD",
        metavar="P",
        help="Join password for nodes (else generated and kept).",
    ),
    node_timeout: float = NODE_TIMEOUT_OPTION,
    no_balance: bool = NO_BALANCE_OPTION,
    tls_cert: Path = TLS_CERT_OPTION,
    tls_key: Path = TLS_KEY_OPTION,
    tls: bool = TLS_OPTION,
    insecure: bool = INSECURE_OPTION,
    store: str = STORE_OPTION,
    log_level: str = LOG_LEVEL_OPTION,
) -> None:
    """Run the manager until Ctrl-C or SIGTERM (HTTPS beyond loopback).

    Beyond loopback it serves HTTPS with a certificate of its own unless --tls-cert/--tls-key
    are given; --insecure serves plain HTTP there, and --tls HTTPS on loopback too."""
    import asyncio
    import logging

    from syncopate.manager.server import Listening, ServeOptions
    from syncopate.manager.server import serve as run_server

    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    directory = (data_dir or default_manager_dir()).expanduser()
    options = ServeOptions(
        data_dir=directory,
        host=host,
        port=port,
        password=password,
        node_timeout=node_timeout,
        balance=not no_balance,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls=tls,
        insecure=insecure,
        store=store or None,
    )

    def ready(at: Listening) -> None:
        from syncopate.cli.serve_lines import ready_lines

        typer.echo("\n".join(ready_lines(at, host, directory)))

    status = asyncio.run(run_server(options, ready))
    if status:
        raise typer.Exit(status)


@app.command()
def token(
    data_dir: Path = DATA_DIR_OPTION,
    rotate: bool = typer.Option(
        False, "--rotate", help="Make a new token; the old one stops working at once."
    ),
    user: str = typer.Option(
        None,
        "--user",
        metavar="NAME",
        help="Make a token of NAME's own (commands they send carry their name); "
        "again for the same NAME replaces it.",
    ),
    role: str = typer.Option(
        None,
        "--role",
        metavar="ROLE",
        help="With --user: viewer (reads), operator (also acts on projects and commands) or "
        "admin (also nodes and tokens). Default: NAME's role before, else operator.",
    ),
    as_json: bool = JSON_OPTION,
    manager: ManagerOption = None,
    admin_token: TokenOption = None,
    ca_file: CaFileOption = None,
    fingerprint: FingerprintOption = None,
) -> None:
    """Print the controller token of the manager on this machine, or make NAME's own.

    With --user on another machine: through the manager named by --manager (or
    SYNCOPATE_MANAGER), with an admin's token."""
    from syncopate.cli import manager_tokens

    directory = (data_dir or default_manager_dir()).expanduser()
    path = directory / "controller.json"
    if role is not None:
        from syncopate.cli.common import usage_error

        if not user:
            raise usage_error("--role goes with --user: the main token is always an admin's")
        if role not in ROLE_NAMES:
            raise usage_error(f"--role: {role!r} is not one of {', '.join(ROLE_NAMES)}")
    if user:
        target = manager_tokens.remote(directory, manager, admin_token, ca_file, fingerprint)
        made, made_role = manager_tokens.make(directory, user, role, target)
        _say_token(made, as_json, name=user, role=made_role)
        return
    if rotate:
        from syncopate.manager.server import rotate_controller_token

        local_only = " (--rotate writes the new token into the controller.json there)"
        with manager_tokens.opened_store(directory, local_only) as store:
            _say_token(rotate_controller_token(directory, store), as_json)
        return
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        _say_token(data["token"], as_json)
    except FileNotFoundError:
        raise ConfigError(
            f"no {path}: start the manager first (`syncopate manager serve"
            f"{' --data-dir ' + str(directory) if data_dir else ''}`)"
        ) from None
    except (ValueError, KeyError, OSError) as exc:
        raise ConfigError(
            f"cannot read the token from {path} ({exc}); make a new one with "
            "`syncopate manager token --rotate`"
        ) from None


def _say_token(value: str, as_json: bool, **fields: str) -> None:
    """A token on its own line, or with --json an object: `token`, and `name` and `role`."""
    if as_json:
        from syncopate.cli.output import print_json

        print_json({**fields, "token": value})
    else:
        typer.echo(value)


@app.command()
def tokens(
    data_dir: Path = DATA_DIR_OPTION,
    as_json: bool = JSON_OPTION,
    manager: ManagerOption = None,
    token: TokenOption = None,
    ca_file: CaFileOption = None,
    fingerprint: FingerprintOption = None,
) -> None:
    """List the controller tokens: names, roles, when made and last used (never values)."""
    from syncopate.cli import manager_tokens

    directory = (data_dir or default_manager_dir()).expanduser()
    target = manager_tokens.remote(directory, manager, token, ca_file, fingerprint)
    found = manager_tokens.listing(directory, target)
    if as_json:
        from syncopate.cli.output import print_json

        print_json(found)
    else:
        manager_tokens.print_tokens(found)


@app.command()
def revoke(
    name: str = typer.Argument(..., metavar="NAME", help="Whose token (`manager tokens`)."),
    data_dir: Path = DATA_DIR_OPTION,
    as_json: bool = JSON_OPTION,
    manager: ManagerOption = None,
    token: TokenOption = None,
    ca_file: CaFileOption = None,
    fingerprint: FingerprintOption = None,
) -> None:
    """End NAME's controller token at once; its open event streams close."""
    from syncopate.cli import manager_tokens

    directory = (data_dir or default_manager_dir()).expanduser()
    target = manager_tokens.remote(directory, manager, token, ca_file, fingerprint)
    manager_tokens.revoke(directory, name, target)
    result = f"revoked {name}'s token"
    if as_json:
        from syncopate.cli.output import print_json

        print_json({"name": name, "result": result})
    else:
        typer.echo(result)


@app.command()
def status(
    as_json: bool = JSON_OPTION,
    manager: ManagerOption = None,
    token: TokenOption = None,
    ca_file: CaFileOption = None,
    fingerprint: FingerprintOption = None,
) -> None:
    """The managers serving this fleet: each one's URL, role (leader, standby, gone) and when
    it was last heard of; one line for a manager on SQLite."""
    from syncopate.cli.common import call
    from syncopate.cli.target import find_target

    target = find_target(manager, token, ca_file, fingerprint)
    health = call(target, lambda client: client.health())
    listed = health.get("managers")
    if not isinstance(listed, list):  # SQLite, or a manager from before DESIGN §13
        listed = [{"url": target.url, "role": "leader", "seen-ago": 0.0}]
    store = str(health.get("store", "sqlite"))
    if as_json:
        from syncopate.cli.output import print_json

        print_json({"store": store, "leader": health.get("leader", target.url), "managers": listed})
        return
    width = max([3, *(len(str(m["url"])) for m in listed)])
    lines = [f"{'URL':<{width}}  {'ROLE':<8}  LAST HEARD"]
    for entry in listed:
        lines.append(f"{entry['url']:<{width}}  {entry['role']:<8}  {entry['seen-ago']:.0f} s ago")
    lines.append(f"store: {store}" + ("" if store != "sqlite" else " (one manager)"))
    typer.echo("\n".join(lines))


# Why join-command and rotate-join have no --manager: the join password is a file on that machine.
JOIN_LOCAL = (
    " (with --data-dir if it keeps its data elsewhere): the join password is kept in a file "
    "there and never sent over the network"
)


@app.command("join-command")
def join_command(
    data_dir: Path = DATA_DIR_OPTION,
    url: str = typer.Option(
        None, metavar="URL", help="The manager's URL as nodes reach it.", show_default="as served"
    ),
) -> None:
    """Print the line a node runs to join the manager on this machine."""
    from syncopate.manager.join import kept_join_command

    directory = (data_dir or default_manager_dir()).expanduser()
    from syncopate.cli.manager_tokens import opened_store

    with opened_store(directory, JOIN_LOCAL) as store:
        typer.echo(kept_join_command(directory, store, url.rstrip("/") if url else None))


@app.command("rotate-join")
def rotate_join(data_dir: Path = DATA_DIR_OPTION) -> None:
    """Make a new join secret: the old one is refused at once; joined nodes carry on."""
    from syncopate.manager.join import kept_join_command
    from syncopate.manager.join import rotate_join as rotate

    directory = (data_dir or default_manager_dir()).expanduser()
    from syncopate.cli.manager_tokens import opened_store

    with opened_store(directory, JOIN_LOCAL) as store:
        rotate(directory, store)
        try:
            typer.echo(kept_join_command(directory, store))
        except ConfigError:
            typer.echo(f"a new join password is in {directory / 'password'}")


@app.command("install-service")
def install_service(
    host: str = HOST_OPTION,
    port: int = PORT_OPTION,
    data_dir: Path = DATA_DIR_OPTION,
    node_timeout: float = NODE_TIMEOUT_OPTION,
    no_balance: bool = NO_BALANCE_OPTION,
    tls_cert: Path = TLS_CERT_OPTION,
    tls_key: Path = TLS_KEY_OPTION,
    tls: bool = TLS_OPTION,
    insecure: bool = INSECURE_OPTION,
    store: str = STORE_OPTION,
    log_level: str = LOG_LEVEL_OPTION,
    user: bool = typer.Option(
        False, "--user", help="A user unit (systemctl --user) instead of a system unit."
    ),
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
    """Write a systemd unit that runs the manager at boot, and say how to enable it."""
    from syncopate.cli import service

    plan = service.plan("manager", user=user, data_dir=data_dir, unit_dir=unit_dir)
    argv = manager_argv(
        host=host,
        port=port,
        data_dir=plan.data_dir,
        node_timeout=node_timeout,
        balance=not no_balance,
        tls=tls_files(tls_cert, tls_key),
        own_tls=tls,
        insecure=insecure,
        log_level=log_level,
    )
    unit = service.unit_text(argv, plan, f"Syncopate manager ({host}:{port})")
    if store:
        from syncopate.manager.pg_connection import is_postgresql, shown

        if not is_postgresql(store):
            raise ConfigError(
                f"--store: give a postgresql://USER@HOST/DB URL, not {shown(store)!r}"
            )
    if print_only:
        typer.echo(unit, nl=False)
        return
    # The database URL (it may hold a password) goes to the data dir's store.json, where
    # `serve` finds it, not into the unit everyone can read.
    kept = {STORE_FILE: json.dumps({"store": store}) + "\n"} if store else None
    service.install(plan, unit, private=kept)
    typer.echo(f"wrote {plan.unit_path}")
    typer.echo(
        f"the manager keeps its database, join password, TLS key and controller token in "
        f"{plan.data_dir}; `syncopate manager join-command` prints the line nodes run"
    )
    typer.echo(service.next_steps(plan))


def tls_files(cert: Path | None, key: Path | None) -> tuple[Path, Path] | None:
    """Both TLS files as absolute paths (the unit runs in /), or None; ConfigError if only one
    is given or one is missing, which would leave the service failing at every start."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ConfigError("HTTPS needs both --tls-cert and --tls-key")
    files = (cert.expanduser().absolute(), key.expanduser().absolute())
    for path in files:
        if not path.is_file():
            raise ConfigError(f"no file {path}")
    return files


def manager_argv(
    *,
    host: str,
    port: int,
    data_dir: Path,
    node_timeout: float,
    balance: bool,
    tls: tuple[Path, Path] | None,
    log_level: str,
    own_tls: bool = False,
    insecure: bool = False,
) -> list[str]:
    """`syncopate manager serve` with these options, run by this interpreter. Every value is
    spelled out, so the unit says what the manager runs with."""
    import sys

    argv = [sys.executable, "-m", "syncopate", "manager", "serve", "--host", host]
    argv += ["--port", str(port), "--data-dir", str(data_dir)]
    argv += ["--node-timeout", f"{node_timeout:g}", "--log-level", log_level]
    if not balance:
        argv.append("--no-balance")
    if tls is not None:
        argv += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
    if insecure and (tls is not None or own_tls):
        raise ConfigError("--insecure serves plain HTTP: drop it, or --tls/--tls-cert")
    if own_tls:
        argv.append("--tls")
    if insecure:
        argv.append("--insecure")
    return argv

"""`syncopate manager serve|token`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from syncopate.errors import ConfigError
from syncopate.paths import default_manager_dir

app = typer.Typer(help="Run the manager, or print its controller token.", no_args_is_help=True)

DATA_DIR_HELP = "Where the manager keeps its database and secrets."


@app.command()
def serve(
    host: str = typer.Option(
        "127.0.0.1", metavar="HOST", help="Address to listen on (0.0.0.0 for all)."
    ),
    port: int = typer.Option(8470, metavar="PORT", help="Port to listen on (0 picks a free one)."),
    data_dir: Path = typer.Option(
        None, metavar="D", help=DATA_DIR_HELP, show_default="~/.local/share/syncopate/manager"
    ),
    password: str = typer.Option(
        None,
        envvar="SYNCOPATE_PASSWORD",
        metavar="P",
        help="Join password for nodes (else generated and kept).",
    ),
    node_timeout: float = typer.Option(
        15.0, min=0.1, metavar="S", help="Seconds of silence after which a node is dead."
    ),
    no_balance: bool = typer.Option(
        False,
        "--no-balance",
        help="Never move projects only to even the load (failover and drain still move them).",
    ),
    tls_cert: Path = typer.Option(None, metavar="F", help="PEM certificate: serve HTTPS."),
    tls_key: Path = typer.Option(None, metavar="F", help="PEM private key for --tls-cert."),
    log_level: str = typer.Option("info", metavar="LEVEL", help="debug, info, warning or error."),
) -> None:
    """Run the manager until Ctrl-C or SIGTERM."""
    import asyncio
    import logging

    from syncopate.manager.server import ServeOptions
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
    )

    def ready(url: str, shown: str, password_source: str) -> None:
        lines = [
            f"Syncopate manager listening on {url}",
            f"data dir:      {directory}",
            f"join password: {shown if password_source != 'given' else '(as given)'}"
            + (f"  ({password_source})" if password_source != "given" else ""),
            f"nodes join:    syncopate node join {url} --password <password>",
            f"controller:    token in {directory / 'controller.json'} (`syncopate manager token`)",
        ]
        typer.echo("\n".join(lines), err=False)

    asyncio.run(run_server(options, ready))


@app.command()
def token(
    data_dir: Path = typer.Option(
        None, metavar="D", help=DATA_DIR_HELP, show_default="~/.local/share/syncopate/manager"
    ),
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
) -> None:
    """Print the controller token of the manager on this machine."""
    directory = (data_dir or default_manager_dir()).expanduser()
    path = directory / "controller.json"
    if rotate or user:
        from syncopate.manager.server import rotate_controller_token, user_token
        from syncopate.manager.store import Store

        if not (directory / "syncopate.db").exists():
            raise ConfigError(f"no manager database in {directory}; start the manager first")
        store = Store(directory)
        try:
            if user:
                try:
                    typer.echo(user_token(store, user))
                except ValueError as exc:
                    raise ConfigError(f"--user: {exc}") from None
            else:
                typer.echo(rotate_controller_token(directory, store))
        finally:
            store.close()
        return
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        typer.echo(data["token"])
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

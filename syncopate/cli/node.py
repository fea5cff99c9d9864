"""`syncopate node join`: run the agent on this machine."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Run a node agent, or manage nodes.", no_args_is_help=True)


@app.command()
def join(
    url: str = typer.Argument(..., help="The manager's URL, e.g. http://192.168.1.10:8470"),
    password: str = typer.Option(
        None, envvar="SYNCOPATE_PASSWORD", help="The manager's join password (first join)."
    ),
    name: str = typer.Option("", help="Preferred node name (default: the host name)."),
    data_dir: Path = typer.Option(
        None,
        help="Where the node keeps checkouts, logs and node.json.",
        show_default="~/.local/share/syncopate/node",
    ),
    interval: float = typer.Option(5.0, min=0.1, help="Seconds between reports."),
    sync_interval: float = typer.Option(60.0, min=1.0, help="Seconds between git fetches."),
    ca_file: str = typer.Option(None, help="CA certificate to verify an https manager."),
    fingerprint: str = typer.Option(None, help="Pinned sha256: fingerprint of the manager."),
    label: list[str] = typer.Option([], help="KEY=VALUE label for this node (repeatable)."),
    log_level: str = typer.Option("info", help="debug, info, warning or error."),
) -> None:
    """Join the manager and run its projects here until Ctrl-C or SIGTERM."""
    import os
    import sys

    from syncopate.errors import ConfigError

    for item in label:
        if "=" not in item or item.startswith("="):
            raise ConfigError(f"label {item!r} is not KEY=VALUE")
    argv = [sys.executable, "-m", "syncopate.node", url, "--name", name]
    argv += ["--interval", str(interval), "--sync-interval", str(sync_interval)]
    argv += ["--log-level", log_level]
    if data_dir is not None:
        argv += ["--data-dir", str(data_dir)]
    if ca_file:
        argv += ["--ca-file", ca_file]
    if fingerprint:
        argv += ["--fingerprint", fingerprint]
    for item in label:
        argv += ["--label", item]
    env = dict(os.environ)
    if password:
        env["SYNCOPATE_PASSWORD"] = password
    sys.stdout.flush()
    sys.stderr.flush()
    # Replace this process (same pid, for systemd and for whoever started us) with the light
    # entry point, so the agent that runs for months does not carry the CLI's imports.
    os.execve(sys.executable, argv, env)

"""`syncopate node join`: run the agent on this machine."""

from __future__ import annotations

from pathlib import Path

import typer

from syncopate.paths import default_node_dir

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
    import asyncio
    import logging
    import signal

    from syncopate.errors import ConfigError
    from syncopate.node.agent import Agent, AgentSettings

    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    labels = {}
    for item in label:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"label {item!r} is not KEY=VALUE")
        labels[key] = value
    settings = AgentSettings(
        manager=url.rstrip("/"),
        data_dir=(data_dir or default_node_dir()).expanduser(),
        password=password,
        name=name,
        interval=interval,
        sync_interval=sync_interval,
        ca_file=ca_file,
        fingerprint=fingerprint,
        labels=labels,
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await Agent(settings).run(stop)

    asyncio.run(main())

"""`syncopate demo`: a whole fleet on this machine, running the example projects."""

from __future__ import annotations

from pathlib import Path

import typer


def demo(
    nodes: int = typer.Option(
        3, "--nodes", min=1, max=20, metavar="N", help="How many local nodes to start."
    ),
    no_tui: bool = typer.Option(
        False, "--no-tui", help="Show the live status table instead of the TUI."
    ),
    directory: Path = typer.Option(
        None,
        "--dir",
        metavar="D",
        help="Scratch directory for data, repositories and logs, kept afterwards.",
        show_default="a new temporary directory, removed at the end",
    ),
) -> None:
    """Start a manager and local nodes running the example projects; Ctrl-C stops them all.

    Prints SYNCOPATE_MANAGER and SYNCOPATE_TOKEN, so another terminal can drive the fleet.
    Not on a terminal (a pipe), it prints a line whenever the fleet changes.
    """
    from syncopate.demo.run import DemoOptions, run_demo

    run_demo(DemoOptions(nodes=nodes, directory=directory, tui=not no_tui))

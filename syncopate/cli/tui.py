"""`syncopate tui`: the full-screen controller (textual is imported only when it runs)."""

from __future__ import annotations

from syncopate.cli.common import controller_command
from syncopate.cli.target import Target


@controller_command
def tui(*, target: Target) -> None:
    """The fleet, live, full screen: a key for every action (? lists them)."""
    from syncopate.tui.app import run

    run(target.url, target.token, ca_file=target.ca_file, fingerprint=target.fingerprint)

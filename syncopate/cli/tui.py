"""`syncopate tui`: the full-screen controller (textual is imported only when it runs)."""

from __future__ import annotations

from syncopate.cli.common import CaFileOption, FingerprintOption, ManagerOption, TokenOption
from syncopate.cli.target import find_target


def tui(
    manager: ManagerOption = None,
    token: TokenOption = None,
    ca_file: CaFileOption = None,
    fingerprint: FingerprintOption = None,
) -> None:
    """The fleet, live, full screen: a key for every action (? lists them)."""
    target = find_target(manager, token, ca_file, fingerprint)
    from syncopate.tui.app import run

    run(target.url, target.token, ca_file=target.ca_file, fingerprint=target.fingerprint)

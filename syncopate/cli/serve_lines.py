"""What `syncopate manager serve` prints once it listens: where, how nodes join, and what a
controller needs, on this machine and on another one (DESIGN §15)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # serve imports the server when it runs; --help needs neither
    from syncopate.manager.server import Listening

ANY_ADDRESS = ("0.0.0.0", "::", "")


def data_dir_flag(directory: Path) -> str:
    """` --data-dir D` for a manager whose data dir is not the default (the printed commands
    run on this machine must find it), else nothing."""
    from syncopate.paths import default_manager_dir

    return "" if directory == default_manager_dir().expanduser() else f" --data-dir {directory}"


def listen_place(host: str) -> str:
    """Where the manager listens, as a person says it: `all addresses`, or the address."""
    return "all addresses" if host in ANY_ADDRESS else host


def elsewhere_lines(at: Listening, directory: Path) -> list[str]:
    """The environment a controller on another machine sets, one variable a line (a pin is 71
    characters, so the three do not fit in 100 columns together). Its token is a person's
    own, made here (an operator's unless `--role` says otherwise)."""
    lines = [f"SYNCOPATE_MANAGER={at.join_url}"]
    if at.pin:
        lines.append(f"SYNCOPATE_FINGERPRINT={at.pin}")
    if at.insecure:
        lines.append("SYNCOPATE_INSECURE=1  (else it sends no token over plain HTTP)")
    made = f"syncopate manager token --user NAME [--role admin]{data_dir_flag(directory)}"
    lines.append(f"SYNCOPATE_TOKEN=<`{made}` here>")
    return ["  " + line for line in lines]


def ready_lines(at: Listening, host: str, directory: Path) -> list[str]:
    """The lines `serve` prints. The first keeps the shape `Syncopate manager listening on URL`
    (scripts and the demo read this machine's URL from it)."""
    from syncopate.manager.tls import needs_tls

    given = at.password_source == "given"
    first = f"Syncopate manager listening on {at.url}"
    if at.join_url != at.url:
        first += f"  (this machine's URL; it listens on {listen_place(host)})"
    lines = [first]
    if at.join_url != at.url:
        lines.append(f"network URL:   {at.join_url}  (for nodes and controllers elsewhere)")
    lines += [
        f"data dir:      {directory}",
        f"join password: {'(as given)' if given else at.password}"
        + ("" if given else f"  ({at.password_source})"),
    ]
    if at.pin:
        lines.append(f"fingerprint:   {at.pin}  (of its certificate's key)")
    if at.insecure:
        lines.append(
            "warning:       plain HTTP beyond loopback (--insecure): the join password "
            "and every token cross the network in clear"
        )
    lines += [
        f"nodes join:    {at.join_command()}",
        f"controller:    token in {directory / 'controller.json'} "
        f"(`syncopate manager token{data_dir_flag(directory)}`)",
    ]
    if needs_tls(host) or at.join_url != at.url:
        lines.append("elsewhere:     a controller on another machine sets")
        lines += elsewhere_lines(at, directory)
    return lines

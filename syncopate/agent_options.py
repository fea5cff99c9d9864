"""The node agent's command-line options, defined once: flag, type, default, help.

    argv = [sys.executable, "-m", "syncopate.node", *command_line(url, {"name": "pi-7"})]

The light entry point `python -m syncopate.node` builds its argparse parser from OPTIONS; the
Typer commands `syncopate node join` and `install-service` take their defaults and help from it;
`command_line` writes the arguments `join` execs and the systemd unit's ExecStart runs.
Stdlib only and outside `syncopate.node`, so the CLI reads it without loading the agent (a
test checks what `syncopate.cli.main` imports).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Option:
    """One option of the agent's command line, defined once for every place that spells it:
    `python -m syncopate.node` (argparse), `syncopate node join` and `install-service` (Typer),
    and the ExecStart line of the systemd unit."""

    flag: str  # "--sync-interval"
    type: type[Any]  # what argparse converts the text to
    default: Any
    metavar: str
    help: str
    min: float | None = None  # checked by the Typer commands
    show_default: str | None = None  # what `--help` shows instead of the default
    always: bool = False  # on the agent's command line even when it is the default
    repeatable: bool = False

    @property
    def dest(self) -> str:
        """The keyword the option's value goes by: "--sync-interval" gives "sync_interval"."""
        return self.flag.removeprefix("--").replace("-", "_")


URL_HELP = "The manager's URL, e.g. https://192.168.1.10:8470"
# In the order of the agent's command line (the unit's ExecStart), after the manager's URL.
OPTIONS: dict[str, Option] = {
    option.dest: option
    for option in (
        # Not `always`: an empty name would be `--name ""` in a unit, which reads as a mistake.
        Option("--name", str, "", "N", "Preferred node name (default: the host name)."),
        Option("--interval", float, 5.0, "S", "Seconds between reports.", min=0.1, always=True),
        Option(
            "--sync-interval",
            float,
            60.0,
            "S",
            "Seconds between git fetches.",
            min=1.0,
            always=True,
        ),
        Option("--log-level", str, "info", "LEVEL", "debug, info, warning or error.", always=True),
        Option(
            "--data-dir",
            Path,
            None,
            "D",
            "Where the node keeps checkouts, logs and node.json.",
            show_default="~/.local/share/syncopate/node",
        ),
        Option("--ca-file", str, None, "F", "CA certificate to verify an https manager."),
        Option(
            "--fingerprint",
            str,
            None,
            "sha256:...",
            "Pinned fingerprint of the manager's certificate.",
        ),
        Option(
            "--label",
            str,
            [],
            "KEY=VALUE",
            "KEY=VALUE (or KEY) label for this node (repeatable).",
            repeatable=True,
        ),
    )
}


def command_line(url: str, values: dict[str, Any]) -> list[str]:
    """The agent's arguments after `python -m syncopate.node`: `url`, then each option in
    `values` (by dest) that is set, in the order of OPTIONS."""
    argv = [url]
    for dest, option in OPTIONS.items():
        value = values.get(dest, option.default)
        if option.repeatable:
            for item in value:
                argv += [option.flag, str(item)]
        elif option.always or value:
            argv += [option.flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return argv


def parse_labels(items: list[str]) -> dict[str, str]:
    """`KEY=VALUE` (or a bare `KEY`: the label with no value, which `--on KEY` asks for)
    labels as a dict; ValueError names the first that is neither."""
    labels = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise ValueError(f"label {item!r} is not KEY=VALUE or KEY")
        labels[key] = value
    return labels

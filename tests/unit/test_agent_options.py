"""The agent's options, defined once (agent_options.OPTIONS): argparse, Typer, the unit agree."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from syncopate.agent_options import OPTIONS, command_line, parse_labels
from syncopate.cli.node import app
from syncopate.node.__main__ import parse
from syncopate.node.settings import AgentSettings


def test_the_light_entry_defaults_are_the_settings_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SYNCOPATE_PASSWORD", raising=False)
    settings, log_level = parse(["http://m:8470/"])
    defaults = AgentSettings(manager="http://m:8470", data_dir=settings.data_dir)
    assert settings == defaults
    assert log_level == OPTIONS["log_level"].default


def test_the_command_line_parses_back_to_the_values_it_was_written_from(tmp_path: Path) -> None:
    values = {
        "name": "pi-7",
        "interval": 2.5,
        "sync_interval": 90.0,
        "log_level": "debug",
        "data_dir": tmp_path / "node data",
        "ca_file": "/etc/ca.pem",
        "fingerprint": "sha256:ab",
        "label": ["room=lab", "gpio=yes"],
    }
    argv = command_line("http://m:8470", values)
    assert argv[:5] == ["http://m:8470", "--name", "pi-7", "--interval", "2.5"]
    assert argv[5:9] == ["--sync-interval", "90", "--log-level", "debug"]
    settings, log_level = parse(argv)
    assert (settings.name, settings.interval, settings.sync_interval) == ("pi-7", 2.5, 90.0)
    assert (settings.data_dir, settings.ca_file, settings.fingerprint) == (
        tmp_path / "node data",
        "/etc/ca.pem",
        "sha256:ab",
    )
    assert settings.labels == {"room": "lab", "gpio": "yes"} and log_level == "debug"


@pytest.mark.parametrize("command", ["join", "install-service"])
def test_the_typer_commands_take_their_defaults_and_help_from_the_table(command: str) -> None:
    group = typer.main.get_group(app)
    params = {p.name: p for p in group.commands[command].params}
    for dest, option in OPTIONS.items():
        if dest == "log_level" and command == "install-service":
            continue  # the unit runs the agent at its default level
        param = params[dest]
        assert param.opts == [option.flag]
        assert param.default == option.default
        assert getattr(param, "help", None) == option.help
        assert param.metavar == option.metavar


@pytest.mark.parametrize("label", ["=x", "", "="])
def test_a_label_must_be_key_equals_value_or_key(label: str) -> None:
    with pytest.raises(ValueError, match="is not KEY=VALUE or KEY"):
        parse_labels([label])


def test_a_bare_key_is_a_label_with_no_value() -> None:
    assert parse_labels(["gpu", "zone=lab", "empty="]) == {"gpu": "", "zone": "lab", "empty": ""}

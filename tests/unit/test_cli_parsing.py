"""Parsing and help of the CLI, in-process with Typer's CliRunner (no manager needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from syncopate.cli.main import app
from syncopate.cli.project_values import initial_variables
from syncopate.errors import ConfigError
from syncopate.variables import parse_var

runner = CliRunner()


@pytest.mark.parametrize(
    ("item", "parsed"),
    [
        ("count=0", ("count", 0)),
        ("ratio=0.5", ("ratio", 0.5)),
        ("on=true", ("on", True)),
        ("limits=[1, 2]", ("limits", [1, 2])),
        ('cfg={"a": 1}', ("cfg", {"a": 1})),
        ("name=pi", ("name", "pi")),  # not JSON: the string itself
        ('quoted="pi"', ("quoted", "pi")),
        ("empty=", ("empty", "")),
        ("url=http://x/?a=b", ("url", "http://x/?a=b")),  # only the first = splits
    ],
)
def test_var_values_are_json_when_they_parse(item: str, parsed: tuple[str, object]) -> None:
    assert parse_var(item) == parsed


@pytest.mark.parametrize("item", ["novalue", "=5", " =5"])
def test_var_without_a_key_is_refused(item: str) -> None:
    with pytest.raises(ConfigError, match="is not KEY=VALUE"):
        parse_var(item)


def test_vars_file_then_each_var_on_top(tmp_path: Path) -> None:
    path = tmp_path / "vars.json"
    path.write_text('{"a": 1, "b": 2}', encoding="utf-8")
    assert initial_variables(["b=3", "c=x"], path) == {"a": 1, "b": 3, "c": "x"}
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ConfigError, match="must hold a JSON object"):
        initial_variables([], path)
    path.write_text("{nope", encoding="utf-8")
    with pytest.raises(ConfigError, match="is not JSON"):
        initial_variables([], path)


def test_every_documented_command_has_help() -> None:
    for args in [
        [], ["project"], ["node"], ["manager"], ["project", "add"], ["project", "list"],
        ["node", "install-service"], ["manager", "install-service"], ["logs"], ["demo"],
    ]:  # fmt: skip
        result = runner.invoke(app, [*args, "--help"])
        assert result.exit_code == 0, (args, result.output)
        assert "Usage:" in result.output


def test_controller_commands_offer_the_manager_options() -> None:
    result = runner.invoke(app, ["project", "list", "--help"], env={"COLUMNS": "120"})
    for option in ("--manager", "--token", "--ca-file", "--fingerprint", "--json"):
        assert option in result.output


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["project", "add", "only-a-name"], "Missing argument"),
        (["project", "add", "x", "file:///r", "--ram", "-5"], "--ram"),
        (["logs", "x", "--lines", "-1"], "give 0 to 1000"),  # 0 is fine: new lines only
        (["logs"], "name a project, or give --all"),
        (["logs", "x", "--all"], "name a project or give --all, not both"),
        (["project", "stop"], "name the projects to stop, or give --all"),
        (["project", "stop", "x", "--all"], "name the projects to stop or give --all, not both"),
        (["project", "vars", "x"], "give the variables to write as KEY=VALUE"),
        (["command", "send", "--code", "1"], "name the nodes to run it on, or give --all"),
        (["command", "send", "x", "--code", "1", "--file", "f"], "--file F, not both"),
        (["node", "label", "pi-1"], "give labels to set (K=V) or --remove K"),
        (["node", "join"], "Missing argument"),
        (["project", "nonsense"], "No such command"),
    ],
)
def test_usage_errors_exit_2_and_name_the_problem(args: list[str], complaint: str) -> None:
    result = runner.invoke(app, args, env={"SYNCOPATE_MANAGER": "http://127.0.0.1:9"})
    assert result.exit_code == 2
    assert complaint in result.output


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("syncopate ")

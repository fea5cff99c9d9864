"""The one --json shape (syncopate/cli/output.py): kebab-case keys but the user's own, arrays of
objects with `name`, and which command lines ask for it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from syncopate.cli.lazy import subcommands
from syncopate.cli.output import kebab, named, named_list, wants_json


def test_keys_become_kebab_case_at_every_depth_but_the_users_own() -> None:
    wire = {
        "initial_variables": {"a_b": {"c_d": 1}},
        "persistent-variables": {"MY_VAR": 2},
        "env": {"MY_ENV": "x"},
        "secrets": {"API_KEY": "***"},
        "labels": {"Zone_X": "1"},
        "history": [{"by_who": "alice", "fields": ["max_ram"]}],
        "health": {"some_key": None},
    }
    assert kebab(wire) == {
        "initial-variables": {"a_b": {"c_d": 1}},
        "persistent-variables": {"MY_VAR": 2},
        "env": {"MY_ENV": "x"},
        "secrets": {"API_KEY": "***"},
        "labels": {"Zone_X": "1"},
        "history": [{"by-who": "alice", "fields": ["max_ram"]}],  # values are not keys
        "health": {"some-key": None},
    }


def test_named_puts_name_first_and_copies_become_an_array() -> None:
    info = {"status": "running", "copies": {"pi-2": {"status": "lost"}, "pi-1": {"pid": 4}}}
    shaped = named("mon", info, result="started")
    assert next(iter(shaped)) == "name" and shaped["result"] == "started"
    assert shaped["copies"] == [{"node": "pi-1", "pid": 4}, {"node": "pi-2", "status": "lost"}]
    assert info["copies"] == {"pi-2": {"status": "lost"}, "pi-1": {"pid": 4}}  # not changed
    listed = named_list({"b": {"x": 1}, "a": {"x": 2}})
    assert listed == [{"name": "a", "x": 2}, {"name": "b", "x": 1}]


@pytest.mark.parametrize(
    ("argv", "wanted"),
    [
        (["project", "list", "--json"], True),
        (["project", "list"], False),
        (["command", "send", "pi", "--code", "x", "--", "--json"], False),
        (["--json"], True),
    ],
)
def test_wants_json_reads_options_before_a_double_dash(argv: list[str], wanted: bool) -> None:
    assert wants_json(argv) is wanted


def _leaves(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    children = subcommands(command)  # the root group builds its commands on demand
    if not children:
        yield " ".join(path), command
        return
    for name, child in children.items():
        yield from _leaves(child, (*path, name))


def test_every_controller_command_takes_json() -> None:
    """A command that talks to the manager (it has --manager) has --json; the TUI aside."""
    from typer.main import get_command

    from syncopate.cli.main import app

    controller = {
        path: {opt for param in command.params for opt in getattr(param, "opts", ())}
        for path, command in _leaves(get_command(app))
    }
    controller = {path: opts for path, opts in controller.items() if "--manager" in opts}
    assert len(controller) >= 20
    assert [path for path, opts in controller.items() if "--json" not in opts] == ["tui"]

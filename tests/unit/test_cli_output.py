"""The one --json shape (syncopate/cli/output.py): kebab-case keys but the user's own, arrays of
objects with `name`, and which command lines ask for it."""

from __future__ import annotations

import pytest

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

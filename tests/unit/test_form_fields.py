"""The add and edit forms' pure field readers: what a typed value becomes in the request."""

from __future__ import annotations

import pytest

from syncopate.tui.screens.add_project import parse_number, split_constraints
from syncopate.tui.screens.edit_project import health_cmd_text


@pytest.mark.parametrize(
    ("typed", "sent"),
    [
        ("", []),
        ("   ", []),
        ("room=lab", ["room=lab"]),
        ("room=lab gpu", ["room=lab", "gpu"]),
        ("room=lab,gpu", ["room=lab", "gpu"]),
        (" room=lab ,  gpu,,zone!=cold ", ["room=lab", "gpu", "zone!=cold"]),
        ("room=lab\tgpu", ["room=lab", "gpu"]),
        ("=x", ["=x"]),  # sent as typed: the manager refuses it, naming it
    ],
)
def test_run_on_is_split_on_spaces_and_commas(typed: str, sent: list[str]) -> None:
    assert split_constraints(typed) == sent


@pytest.mark.parametrize(
    ("typed", "value"),
    [("", 60.0), ("20", 20.0), ("0.5", 0.5), ("-1", -1.0), ("1e3", 1000.0)],
)
def test_a_number_field_reads_any_finite_number(typed: str, value: float) -> None:
    """Empty is the default; a negative one is sent, for the manager to refuse."""
    assert parse_number(typed, "grace", 60.0) == value


@pytest.mark.parametrize("typed", ["lots", "nan", "inf", "-inf", "1,5"])
def test_a_number_field_refuses_what_is_no_finite_number(typed: str) -> None:
    with pytest.raises(ValueError, match="grace is a number"):
        parse_number(typed, "grace", 60.0)


@pytest.mark.parametrize(
    ("health", "shown"),
    [
        (None, ""),
        ({"cmd": "true", "http": None}, "true"),
        ({"cmd": None, "http": "http://localhost/ok"}, ""),  # an HTTP check is no command
    ],
)
def test_the_edit_form_shows_the_health_command(health: object, shown: str) -> None:
    assert health_cmd_text({"health": health}) == shown

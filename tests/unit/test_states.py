"""State tables."""

from __future__ import annotations

import pytest

from syncopate.states import (
    COMMAND_FINAL_STATES,
    CommandState,
    ProjectStatus,
    command_transition_allowed,
    parse_reported_status,
)

C = CommandState


@pytest.mark.parametrize(
    ("current", "target", "allowed"),
    [
        (C.REQUESTED, C.COLLECTED, True),
        (C.REQUESTED, C.CANCELED, True),
        (C.REQUESTED, C.TIMED_OUT, True),
        (C.REQUESTED, C.RESPONDED, False),
        (C.COLLECTED, C.RESPONDED, True),
        (C.COLLECTED, C.TIMED_OUT, True),
        (C.COLLECTED, C.CANCELED, False),
        (C.RESPONDED, C.ANALYZED, True),
        (C.RESPONDED, C.COLLECTED, False),
        (C.ANALYZED, C.ANALYZED, False),
        (C.CANCELED, C.COLLECTED, False),
        (C.TIMED_OUT, C.RESPONDED, False),
    ],
)
def test_command_transitions(current: C, target: C, allowed: bool) -> None:
    assert command_transition_allowed(current, target) is allowed


def test_final_states_have_no_way_out() -> None:
    assert {C.ANALYZED, C.TIMED_OUT, C.CANCELED} == COMMAND_FINAL_STATES


@pytest.mark.parametrize(
    ("reported", "status"),
    [
        ("running", ProjectStatus.RUNNING),
        ("good", ProjectStatus.RUNNING),
        ("GOOD", ProjectStatus.RUNNING),
        ("bad", ProjectStatus.FAILED),
        ("crashed", ProjectStatus.CRASHED),
        ("stopped", ProjectStatus.STOPPED),
        ("cloning", ProjectStatus.CLONING),
    ],
)
def test_reported_statuses(reported: str, status: ProjectStatus) -> None:
    assert parse_reported_status(reported) is status


@pytest.mark.parametrize("reported", ["unschedulable", "pending", "lost", "fine", ""])
def test_statuses_a_node_may_not_report(reported: str) -> None:
    with pytest.raises(ValueError, match="status"):
        parse_reported_status(reported)

"""State tables."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from syncopate.protocol import UpdateRequest
from syncopate.states import (
    COMMAND_FINAL_STATES,
    PROJECT_TRANSITIONS,
    CommandState,
    ProjectStatus,
    TransitionRefused,
    check_project_transition,
    command_transition_allowed,
    parse_reported_status,
    project_transition_allowed,
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
        # what the seed's own node client reports (DESIGN §10)
        ("alive", ProjectStatus.RUNNING),
        ("dead", ProjectStatus.CRASHED),
        ("unborn", ProjectStatus.STARTING),
    ],
)
def test_reported_statuses(reported: str, status: ProjectStatus) -> None:
    assert parse_reported_status(reported) is status


@pytest.mark.parametrize("reported", ["unschedulable", "pending", "lost", "fine", ""])
def test_statuses_a_node_may_not_report(reported: str) -> None:
    with pytest.raises(ValueError, match="status"):
        parse_reported_status(reported)


P = ProjectStatus


@pytest.mark.parametrize(
    ("current", "target", "allowed"),
    [
        (P.PENDING, P.CLONING, True),
        (P.CLONING, P.STARTING, True),
        (P.STARTING, P.RUNNING, True),
        (P.RUNNING, P.CRASHED, True),
        (P.CRASHED, P.STARTING, True),
        (P.CRASHED, P.FAILED, True),  # a crash loop
        (P.FAILED, P.STARTING, True),  # start, restart, a new commit
        (P.RUNNING, P.STOPPED, True),
        (P.RUNNING, P.PENDING, True),  # placed anew (reset, moved)
        (P.RUNNING, P.LOST, True),
        (P.RUNNING, P.RUNNING, True),
        (P.FAILED, P.CRASHED, False),  # nothing runs that could crash
        (P.FAILED, P.RUNNING, False),  # only through starting
        (P.STOPPED, P.RUNNING, False),
        (P.STOPPED, P.CRASHED, False),
        (P.CLONING, P.RUNNING, False),
        (P.UNSCHEDULABLE, P.RUNNING, False),  # placed first
        (P.LOST, P.CRASHED, False),
    ],
)
def test_project_transitions(current: P, target: P, allowed: bool) -> None:
    assert project_transition_allowed(current, target) is allowed
    if allowed:
        check_project_transition("demo", current, target)
    else:
        with pytest.raises(TransitionRefused, match=f"project demo: no transition {current}"):
            check_project_transition("demo", current, target)


def test_every_project_status_has_a_row_and_a_way_in() -> None:
    assert set(PROJECT_TRANSITIONS) == set(ProjectStatus)
    reachable = set().union(*PROJECT_TRANSITIONS.values())
    assert reachable == set(ProjectStatus)


def test_seed_usage_fields() -> None:
    """The seed's client reports project-ram (MB) and project-storage (KB), as form strings."""
    base = {"name": "n", "access-token": "t", "project-name": "p", "project-url": "u"}
    report = UpdateRequest.model_validate(
        {**base, "status": "alive", "project-ram": "12.5", "project-storage": "2048"}
    )
    assert (report.ram_usage, report.disk_usage) == (12.5, 2.0)
    # our agent's fields win when both are sent
    both = UpdateRequest.model_validate(
        {**base, "status": "running", "ram-usage": 3, "project-ram": 9, "disk-usage": 1}
    )
    assert (both.ram_usage, both.disk_usage) == (3.0, 1.0)
    with pytest.raises(ValidationError, match="project-storage"):
        UpdateRequest.model_validate({**base, "status": "alive", "project-storage": "-1"})

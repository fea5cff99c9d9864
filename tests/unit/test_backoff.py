"""Restart backoff, from tables."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest

from syncopate.node.backoff import (
    REQUEST_RETRY,
    BackoffPolicy,
    delays,
    failures_after_exit,
    jitter,
    restart_delay,
)

DEFAULT = BackoffPolicy()
SLOW = BackoffPolicy(first=1.0, factor=3.0, cap=20.0, stable_after=60.0)


@pytest.mark.parametrize(
    ("policy", "failures", "expected"),
    [
        # no failure before this one: the fast first restart
        (DEFAULT, 0, 0.05),
        (DEFAULT, 1, 0.1),
        (DEFAULT, 2, 0.2),
        (DEFAULT, 5, 1.6),
        (DEFAULT, 9, 25.6),
        # capped
        (DEFAULT, 10, 30.0),
        (DEFAULT, 50, 30.0),
        # a count so large that factor ** count overflows a float: still the cap
        (DEFAULT, 10**6, 30.0),
        # a negative count is read as none
        (DEFAULT, -3, 0.05),
        (SLOW, 0, 1.0),
        (SLOW, 1, 3.0),
        (SLOW, 2, 9.0),
        (SLOW, 3, 20.0),
        # factor 1: a constant delay
        (BackoffPolicy(first=2.0, factor=1.0, cap=5.0), 7, 2.0),
        # first 0: restart at once, every time
        (BackoffPolicy(first=0.0), 4, 0.0),
    ],
)
def test_restart_delay(policy: BackoffPolicy, failures: int, expected: float) -> None:
    assert restart_delay(policy, failures) == pytest.approx(expected)


def test_restart_delay_never_decreases_and_never_passes_the_cap() -> None:
    delays = [restart_delay(DEFAULT, n) for n in range(100)]
    assert delays == sorted(delays)
    assert max(delays) == DEFAULT.cap


@pytest.mark.parametrize(
    ("policy", "failures", "ran_for", "expected"),
    [
        # a short run adds one
        (DEFAULT, 0, 0.0, 1),
        (DEFAULT, 1, 0.5, 2),
        (DEFAULT, 7, 9.99, 8),
        # a stable run forgives: this exit is the first failure
        (DEFAULT, 7, 10.0, 1),
        (DEFAULT, 7, 3600.0, 1),
        (DEFAULT, 0, 10.0, 1),
        (SLOW, 3, 59.0, 4),
        (SLOW, 3, 60.0, 1),
        # stable_after 0: every run is stable
        (BackoffPolicy(stable_after=0.0), 5, 0.0, 1),
        # a negative count is read as none
        (DEFAULT, -2, 1.0, 1),
    ],
)
def test_failures_after_exit(
    policy: BackoffPolicy, failures: int, ran_for: float, expected: int
) -> None:
    assert failures_after_exit(policy, failures, ran_for) == expected


def test_crash_loop_then_stable_run_starts_fast_again() -> None:
    failures, delays = 0, []
    for ran_for in (0.1, 0.1, 0.1, 0.1, 30.0):
        failures = failures_after_exit(DEFAULT, failures, ran_for)
        delays.append(restart_delay(DEFAULT, failures - 1))
    assert delays == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.05])


@pytest.mark.parametrize(
    "fields",
    [
        {"first": -1.0},
        {"first": math.nan},
        {"factor": 0.5},
        {"cap": 0.01},  # below first
        {"stable_after": -1.0},
    ],
)
def test_policy_refuses_nonsense(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="backoff"):
        BackoffPolicy(**fields)


def test_request_retries_double_up_to_the_cap_and_stay_there() -> None:
    # The waits the agent used to compute inline: 0.5, doubled, at most 30 s.
    waits = list(itertools.islice(delays(REQUEST_RETRY), 9))
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_jitter_stays_within_half_either_way() -> None:
    assert all(5.0 <= jitter(10.0) <= 15.0 for _ in range(100))

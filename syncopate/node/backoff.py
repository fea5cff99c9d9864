"""Backoff: how long to wait before a crashed project restarts (and when to forgive), and
before a failed request or a step is tried again.

Pure functions of a policy and a count, stdlib only, so the supervisor stays a thin shell:

    failures = failures_after_exit(policy, failures, ran_for)
    delay = restart_delay(policy, failures - 1)

The first restart is fast (`first`); each further failure in a row multiplies the delay by
`factor` up to `cap`. A run that lasted `stable_after` seconds or more forgives the earlier
failures: its exit counts as the first failure again.

Something retried until it works (a request to the manager, a check that a group is gone)
takes its waits from `delays(policy)`, with `jitter` where a fleet must not retry in step.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class BackoffPolicy:
    """How a crashed project is restarted. All durations are in seconds."""

    first: float = 0.05
    """The delay before the first restart after a stable run: fast, so a blip barely shows."""
    factor: float = 2.0
    """Each further failure in a row multiplies the delay by this (at least 1)."""
    cap: float = 30.0
    """The delay never grows beyond this, so a broken project is retried twice a minute."""
    stable_after: float = 10.0
    """A run at least this long forgives the failures before it."""
    crash_loop: int = 5
    """This many quick runs in a row (each shorter than `stable_after`) is a crash loop: the
    project is failed and not restarted until asked. 0 never gives up."""

    def __post_init__(self) -> None:
        # `not (x >= y)` rather than `x < y`, so that NaN is refused too.
        if not self.first >= 0:
            raise ValueError(f"backoff first must be 0 or more, not {self.first!r}")
        if not self.factor >= 1:
            raise ValueError(f"backoff factor must be 1 or more, not {self.factor!r}")
        if not self.cap >= self.first:
            raise ValueError(f"backoff cap ({self.cap!r}) must be at least first ({self.first!r})")
        if not self.stable_after >= 0:
            raise ValueError(f"backoff stable_after must be 0 or more, not {self.stable_after!r}")
        if self.crash_loop < 0:
            raise ValueError(f"backoff crash_loop must be 0 or more, not {self.crash_loop!r}")


def restart_delay(policy: BackoffPolicy, failures_in_a_row: int) -> float:
    """Seconds to wait before the next start, after `failures_in_a_row` earlier failures.

    0 gives `policy.first`; each failure multiplies it by `policy.factor`; never above
    `policy.cap`. A negative count is treated as 0.
    """
    exponent = max(0, failures_in_a_row)
    try:
        delay = policy.first * policy.factor**exponent
    except OverflowError:
        return policy.cap
    return min(delay, policy.cap)


def failures_after_exit(policy: BackoffPolicy, failures_in_a_row: int, ran_for: float) -> int:
    """The count of failures in a row once a run that lasted `ran_for` seconds has exited.

    A stable run (at least `policy.stable_after`) forgives what came before: this exit is the
    first failure. Otherwise the count grows by one.
    """
    if ran_for >= policy.stable_after:
        return 1
    return max(0, failures_in_a_row) + 1


def is_crash_loop(policy: BackoffPolicy, failures_in_a_row: int) -> bool:
    """True when `failures_in_a_row` quick exits are a crash loop under `policy`."""
    return policy.crash_loop > 0 and failures_in_a_row >= policy.crash_loop


# A request to the manager that could not be sent (the network, a manager restarting).
REQUEST_RETRY = BackoffPolicy(first=0.5, factor=2.0, cap=30.0)
# A failure that is not retried by the clock: it waits for a start, a restart or a new commit.
NEVER = float("inf")


def delays(policy: BackoffPolicy) -> Iterator[float]:
    """The waits before each retry of something that keeps failing, endless: `policy.first`,
    then multiplied by `policy.factor` each time, never above `policy.cap`."""
    failures = 0
    while True:
        delay = restart_delay(policy, failures)
        yield delay
        if delay < policy.cap:  # once at the cap it stays there; the count need not grow
            failures += 1


def jitter(delay: float) -> float:
    """`delay` give or take half, so a fleet of agents does not retry in step."""
    return delay * random.uniform(0.5, 1.5)

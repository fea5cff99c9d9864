"""The credential throttle: its window, lockout, clearing, and forgetting old addresses."""

from __future__ import annotations

import pytest

from syncopate.manager.throttle import CredentialThrottle, address_key


def test_throttle_locks_after_max_failures_and_unlocks_later() -> None:
    throttle = CredentialThrottle(max_failures=3, window=60, lockout=30)
    for t in (0.0, 1.0):
        throttle.failed("10.0.0.5", t)
        assert throttle.retry_after("10.0.0.5", t) == 0
    throttle.failed("10.0.0.5", 2.0)
    assert throttle.retry_after("10.0.0.5", 2.0) == 30
    assert throttle.retry_after("10.0.0.6", 2.0) == 0  # other addresses are not affected
    assert throttle.retry_after("10.0.0.5", 31.9) > 0
    assert throttle.retry_after("10.0.0.5", 32.0) == 0


def test_throttle_forgets_failures_outside_the_window() -> None:
    throttle = CredentialThrottle(max_failures=3, window=10, lockout=30)
    throttle.failed("a", 0)
    throttle.failed("a", 1)
    throttle.failed("a", 20)  # the first two are out of the window
    assert throttle.retry_after("a", 20) == 0
    throttle.failed("a", 21)
    throttle.failed("a", 22)  # three within 10 s
    assert throttle.retry_after("a", 22) == 30


def test_success_clears_failures() -> None:
    throttle = CredentialThrottle(max_failures=2, window=60, lockout=30)
    throttle.failed("a", 0)
    throttle.succeeded("a")
    throttle.failed("a", 1)
    assert throttle.retry_after("a", 1) == 0


def test_success_does_not_end_a_lockout_and_the_count_starts_again_after_it() -> None:
    throttle = CredentialThrottle(max_failures=2, window=60, lockout=30)
    throttle.failed("a", 0)
    throttle.failed("a", 1)
    throttle.succeeded("a")  # a right credential that slipped in as the lock began
    assert throttle.retry_after("a", 2) == 29
    assert throttle.retry_after("a", 31) == 0
    throttle.failed("a", 32)  # the failures before the lockout do not count again
    assert throttle.retry_after("a", 32) == 0


def test_old_addresses_are_forgotten_once_there_are_many() -> None:
    throttle = CredentialThrottle(max_failures=2, window=10, lockout=5, sweep_at=100)
    for i in range(99):
        throttle.failed(f"10.0.0.{i}", 0)  # one failure each: none locked
    throttle.failed("10.9.9.9", 1)
    throttle.failed("10.9.9.9", 1)  # locked until 6
    assert throttle.remembered() == 100
    throttle.failed("10.8.8.8", 20)  # the 101st, past the window: the sweep forgets the others
    assert throttle.remembered() == 1  # the lockout ended at 6 too; only 10.8.8.8 is left


def test_a_sweep_that_frees_little_waits_for_the_count_to_double() -> None:
    throttle = CredentialThrottle(max_failures=5, window=1000, lockout=5, sweep_at=10)
    for i in range(40):
        throttle.failed(f"10.0.0.{i}", float(i))  # all within the window: nothing to free
    assert throttle.remembered() == 40
    assert throttle._next_sweep >= 22  # it did not sweep on every failure past 10


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("10.0.0.5", "10.0.0.5"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::7", "2001:db8:1:2::/64"),
        ("::ffff:10.0.0.5", "10.0.0.5"),
        ("unknown", "unknown"),
    ],
)
def test_an_ipv6_host_is_counted_by_its_64(address: str, key: str) -> None:
    assert address_key(address) == key


def test_addresses_of_one_ipv6_64_share_a_count() -> None:
    throttle = CredentialThrottle(max_failures=2, window=60, lockout=30)
    throttle.failed("2001:db8::1", 0)
    throttle.failed("2001:db8::2", 0)
    assert throttle.retry_after("2001:db8::ffff", 0) == 30
    assert throttle.retry_after("2001:db9::1", 0) == 0

"""The credential throttle: per (address, scope) counts, window, lockout, and forgetting."""

from __future__ import annotations

import pytest

from syncopate.manager.throttle import (
    CONTROLLER,
    JOIN,
    CredentialThrottle,
    address_key,
    node_scope,
    scope_credentials,
)


def test_throttle_locks_after_max_failures_and_unlocks_later() -> None:
    throttle = CredentialThrottle(max_failures=3, window=60, lockout=30)
    for t in (0.0, 1.0):
        assert not throttle.failed("10.0.0.5", CONTROLLER, t)
        assert throttle.retry_after("10.0.0.5", CONTROLLER, t) == 0
    assert throttle.failed("10.0.0.5", CONTROLLER, 2.0)  # this one began the lockout
    assert throttle.retry_after("10.0.0.5", CONTROLLER, 2.0) == 30
    assert throttle.retry_after("10.0.0.6", CONTROLLER, 2.0) == 0  # other addresses are not
    assert throttle.retry_after("10.0.0.5", CONTROLLER, 31.9) > 0
    assert throttle.retry_after("10.0.0.5", CONTROLLER, 32.0) == 0


def test_a_lockout_is_of_its_scope_only() -> None:
    """Wrong controller tokens never lock the address's node polls or joins out."""
    throttle = CredentialThrottle(max_failures=2, window=60, lockout=30)
    throttle.failed("10.0.0.5", CONTROLLER, 0)
    throttle.failed("10.0.0.5", CONTROLLER, 1)
    assert throttle.retry_after("10.0.0.5", CONTROLLER, 1) == 30
    assert throttle.retry_after("10.0.0.5", node_scope("pi-1"), 1) == 0
    assert throttle.retry_after("10.0.0.5", JOIN, 1) == 0


def test_each_node_is_its_own_scope() -> None:
    """A guesser of pi-1's token locks out pi-1 at that address, not pi-2 there."""
    throttle = CredentialThrottle(max_failures=2, window=60, lockout=30)
    throttle.failed("10.0.0.5", node_scope("pi-1"), 0)
    throttle.failed("10.0.0.5", node_scope("pi-2"), 0)  # one each: nothing locked
    assert throttle.retry_after("10.0.0.5", node_scope("pi-1"), 0) == 0
    throttle.failed("10.0.0.5", node_scope("pi-1"), 1)
    assert throttle.retry_after("10.0.0.5", node_scope("pi-1"), 1) == 30
    assert throttle.retry_after("10.0.0.5", node_scope("pi-2"), 1) == 0
    assert throttle.retry_after("10.0.0.5", CONTROLLER, 1) == 0


def test_failures_expire_only_by_the_window() -> None:
    """There is no success to clear them: 4 wrong + 1 right, again, locks on the 5th wrong."""
    throttle = CredentialThrottle(max_failures=5, window=60, lockout=30)
    for t in range(4):
        throttle.failed("a", CONTROLLER, float(t))
    assert not hasattr(throttle, "succeeded")  # a right credential has nothing to tell it
    assert throttle.failures("a", CONTROLLER) == 4
    assert throttle.failed("a", CONTROLLER, 10.0)
    assert throttle.retry_after("a", CONTROLLER, 10.0) == 30


def test_throttle_forgets_failures_outside_the_window() -> None:
    throttle = CredentialThrottle(max_failures=3, window=10, lockout=30)
    throttle.failed("a", JOIN, 0)
    throttle.failed("a", JOIN, 1)
    throttle.failed("a", JOIN, 20)  # the first two are out of the window
    assert throttle.retry_after("a", JOIN, 20) == 0
    throttle.failed("a", JOIN, 21)
    throttle.failed("a", JOIN, 22)  # three within 10 s
    assert throttle.retry_after("a", JOIN, 22) == 30


def test_the_count_starts_again_after_a_lockout() -> None:
    throttle = CredentialThrottle(max_failures=2, window=60, lockout=30)
    throttle.failed("a", JOIN, 0)
    throttle.failed("a", JOIN, 1)
    assert throttle.retry_after("a", JOIN, 31) == 0
    assert not throttle.failed("a", JOIN, 32)  # the failures before the lockout do not count
    assert throttle.retry_after("a", JOIN, 32) == 0


def test_old_pairs_are_forgotten_once_there_are_many() -> None:
    throttle = CredentialThrottle(max_failures=2, window=10, lockout=5, sweep_at=100)
    for i in range(99):
        throttle.failed("10.0.0.1", node_scope(f"n{i}"), 0)  # one failure each: none locked
    throttle.failed("10.9.9.9", CONTROLLER, 1)
    throttle.failed("10.9.9.9", CONTROLLER, 1)  # locked until 6
    assert throttle.remembered() == 100
    throttle.failed("10.8.8.8", JOIN, 20)  # the 101st, past the window: the sweep forgets
    assert throttle.remembered() == 1  # the lockout ended at 6 too; only 10.8.8.8 is left


def test_a_sweep_that_frees_little_waits_for_the_count_to_double() -> None:
    throttle = CredentialThrottle(max_failures=5, window=1000, lockout=5, sweep_at=10)
    for i in range(40):
        throttle.failed(f"10.0.0.{i}", CONTROLLER, float(i))  # all within the window
    assert throttle.remembered() == 40
    assert throttle._next_sweep >= 22  # it did not sweep on every failure past 10


@pytest.mark.parametrize(
    ("scope", "words"),
    [
        (JOIN, "join passwords"),
        (CONTROLLER, "controller tokens"),
        (node_scope("pi-1"), "tokens of node 'pi-1'"),
    ],
)
def test_a_scope_is_named_for_people(scope: str, words: str) -> None:
    assert scope_credentials(scope) == words


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
    throttle.failed("2001:db8::1", CONTROLLER, 0)
    throttle.failed("2001:db8::2", CONTROLLER, 0)
    assert throttle.retry_after("2001:db8::ffff", CONTROLLER, 0) == 30
    assert throttle.retry_after("2001:db9::1", CONTROLLER, 0) == 0

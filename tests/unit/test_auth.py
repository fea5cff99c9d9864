"""Secrets and the wrong-password throttle."""

from __future__ import annotations

from syncopate.manager.auth import JoinThrottle, hash_secret, new_token, secret_matches


def test_tokens_are_unique_and_hashes_check() -> None:
    a, b = new_token(), new_token()
    assert a != b and len(a) >= 40
    assert secret_matches(a, hash_secret(a))
    assert not secret_matches(b, hash_secret(a))


def test_throttle_locks_after_max_failures_and_unlocks_later() -> None:
    throttle = JoinThrottle(max_failures=3, window=60, lockout=30)
    for t in (0.0, 1.0):
        throttle.failed("10.0.0.5", t)
        assert throttle.retry_after("10.0.0.5", t) == 0
    throttle.failed("10.0.0.5", 2.0)
    assert throttle.retry_after("10.0.0.5", 2.0) == 30
    assert throttle.retry_after("10.0.0.6", 2.0) == 0  # other addresses are not affected
    assert throttle.retry_after("10.0.0.5", 31.9) > 0
    assert throttle.retry_after("10.0.0.5", 32.0) == 0


def test_throttle_forgets_failures_outside_the_window() -> None:
    throttle = JoinThrottle(max_failures=3, window=10, lockout=30)
    throttle.failed("a", 0)
    throttle.failed("a", 1)
    throttle.failed("a", 20)  # the first two are out of the window
    assert throttle.retry_after("a", 20) == 0


def test_success_clears_failures() -> None:
    throttle = JoinThrottle(max_failures=2, window=60, lockout=30)
    throttle.failed("a", 0)
    throttle.succeeded("a")
    throttle.failed("a", 1)
    assert throttle.retry_after("a", 1) == 0

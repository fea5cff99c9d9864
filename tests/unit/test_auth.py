"""Secrets: tokens and their hashes (the throttle: test_throttle.py)."""

from __future__ import annotations

from syncopate.manager.auth import hash_secret, new_token, secret_matches


def test_tokens_are_unique_and_hashes_check() -> None:
    a, b = new_token(), new_token()
    assert a != b and len(a) >= 40
    assert secret_matches(a, hash_secret(a))
    assert not secret_matches(b, hash_secret(a))

"""Secrets: tokens, their hashes, constant-time checks, the wrong-password throttle, and the
check of a request's controller token (the main one or a person's own, both kept hashed).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from syncopate.errors import Unauthorized
from syncopate.manager.store import Store

# Where the store keeps the controller tokens' hashes (its `meta` table).
CONTROLLER_TOKEN_KEY = "controller-token-hash"
CONTROLLER_USER_KEY = "controller-token-user"  # the name behind the main controller token
USER_TOKEN_PREFIX = "controller-token:"  # + a person's name: the hash of their own token
DEFAULT_CONTROLLER_USER = "admin"


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def new_password() -> str:
    """A join password a person can type: four groups of five characters."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    groups = ["".join(secrets.choice(alphabet) for _ in range(5)) for _ in range(4)]
    return "-".join(groups)


def hash_secret(secret: str) -> str:
    """SHA-256 of a high-entropy secret; only this is stored.

    Total over str: a secret from a header or a form may hold lone surrogates (undecodable
    bytes), which `surrogatepass` encodes rather than raise; such a secret matches nothing.
    """
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    """Compare a presented secret with a stored hash in constant time."""
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def check_controller_token(store: Store, token: str | None) -> str:
    """The name behind a controller token (the main one, or a person's); else Unauthorized."""
    if token:
        stored = store.get_meta(CONTROLLER_TOKEN_KEY) or ""
        if stored and secret_matches(token, stored):
            return store.get_meta(CONTROLLER_USER_KEY) or DEFAULT_CONTROLLER_USER
        for key, user_hash in store.meta_with_prefix(USER_TOKEN_PREFIX):
            if secret_matches(token, user_hash):
                return key[len(USER_TOKEN_PREFIX) :]
    raise Unauthorized("controller token refused; use the token from `syncopate manager token`")


def bearer(headers: Mapping[str, str]) -> str | None:
    """The token of an `Authorization: Bearer ...` header, if the request has one."""
    header = headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return None


@dataclass
class JoinThrottle:
    """Refuses joins from an address after repeated wrong passwords, for a while.

    `max_failures` wrong passwords within `window` seconds lock the address out for
    `lockout` seconds. Pure: the caller passes the time in.
    """

    max_failures: int = 5
    window: float = 60.0
    lockout: float = 60.0
    _failures: dict[str, deque[float]] = field(default_factory=dict)
    _locked_until: dict[str, float] = field(default_factory=dict)

    def retry_after(self, address: str, now: float) -> float:
        """Seconds until this address may try again; 0 when it may try now."""
        until = self._locked_until.get(address)
        if until is None:
            return 0.0
        if now >= until:
            del self._locked_until[address]
            return 0.0
        return until - now

    def failed(self, address: str, now: float) -> None:
        """Record a wrong password from `address`."""
        history = self._failures.setdefault(address, deque())
        history.append(now)
        while history and now - history[0] > self.window:
            history.popleft()
        if len(history) >= self.max_failures:
            self._locked_until[address] = now + self.lockout
            history.clear()
        if len(self._failures) > 10_000:
            self._forget_old(now)

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)

    def _forget_old(self, now: float) -> None:
        for address in [a for a, h in self._failures.items() if not h or now - h[-1] > self.window]:
            del self._failures[address]
